"""Optuna studies: the search space as data, storages, the resumable study loop, the objective.

Imports optuna, never kedro or mlflow (tracking reaches the objective through a protocol).
"""

from mental_health_hpo.hpo.runner import Progress, StudyHooks, TrialContext, TrialStopped, run_study
from mental_health_hpo.hpo.search_space import SearchSpace
from mental_health_hpo.hpo.study import StudyConfig, open_study

__all__ = [
    "Progress",
    "SearchSpace",
    "StudyConfig",
    "StudyHooks",
    "TrialContext",
    "TrialStopped",
    "open_study",
    "run_study",
]
