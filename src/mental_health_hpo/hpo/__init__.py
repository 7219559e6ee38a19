"""Optuna studies: the search space as data, storages, leases, the study loop, the objective.

Imports optuna (and SQLAlchemy for the leases and locks), never kedro or mlflow: tracking
reaches the objective through a protocol.
"""

from mental_health_hpo.hpo.coordination import Coordination, coordination_for
from mental_health_hpo.hpo.leases import Heartbeat, Lease, LeaseStore, Worker
from mental_health_hpo.hpo.runner import (
    StudyHooks,
    StudyRunner,
    StudyStoppedError,
    TrialContext,
    TrialStopped,
)
from mental_health_hpo.hpo.search_space import SearchSpace
from mental_health_hpo.hpo.study import StudyConfig, open_study
from mental_health_hpo.hpo.tally import Progress, Tally

__all__ = [
    "AdvisoryStudyLock",
    "Coordination",
    "Heartbeat",
    "Lease",
    "LeaseStore",
    "Progress",
    "SearchSpace",
    "StudyConfig",
    "StudyHooks",
    "StudyRunner",
    "StudyStoppedError",
    "Tally",
    "TrialContext",
    "TrialStopped",
    "Worker",
    "coordination_for",
    "open_study",
]
