"""Kedro project settings.

Parameters merge softly so that ``kedro run --params hpo.n_trials=3`` overrides one key and keeps
the rest of its group.
"""

from kedro.config import OmegaConfigLoader

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
}

# No usage data leaves the machine (kedro-telemetry comes with kedro-viz).
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-telemetry",)

# `kedro run --pipeline hpo` runs data_ingest only where its outputs are missing.
from mental_health_hpo.session import ProjectSession  # noqa: E402

SESSION_CLASS = ProjectSession

from mental_health_hpo.hooks import ProjectHooks  # noqa: E402

HOOKS = (ProjectHooks(),)
