"""Kedro project settings.

Parameters merge softly so that ``kedro run --params hpo.n_trials=3`` overrides one key and keeps
the rest of its group.
"""

from kedro.config import OmegaConfigLoader

from mental_health_hpo.dependency_warnings import ignore_dependency_warnings
from mental_health_hpo.hooks import (
    CleanBarsHooks,
    CredentialsHooks,
    FreshnessHooks,
    ProjectHooks,
    RunnerNameHooks,
)

ignore_dependency_warnings()  # see dependency_warnings.py

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
}

# No usage data leaves the machine (kedro-telemetry comes with kedro-viz).
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-telemetry",)

# `kedro run --only-missing-outputs` (Kedro's own filter) re-runs data_ingest when its
# parameters changed and always runs the study node: FreshnessHooks. Log lines above the
# progress bars on a terminal: CleanBarsHooks. The runner's class name, not its object repr, in
# the run params and so in kedro-mlflow's run tags (it runs before kedro-mlflow's hook, which is
# registered from its entry point after these): RunnerNameHooks.
# The study database's credentials from credentials.yml, exported for libpq before any node runs
# (and a warning for a tracking URI with a password): CredentialsHooks.
HOOKS = (
    ProjectHooks(),
    CredentialsHooks(),
    RunnerNameHooks(),
    FreshnessHooks(),
    CleanBarsHooks(),
)
