"""MLflow publishing for trials, the disk-backed outage buffer, pending runs, the circuit breaker
and the sweep of abandoned runs. Never imports kedro."""

from mental_health_hpo.tracking.abandoned import create_owned_run, end_abandoned_runs
from mental_health_hpo.tracking.breaker import (
    BreakerOptions,
    CircuitBreaker,
    TrackerUnavailableError,
)
from mental_health_hpo.tracking.buffer import MetricPoint, MetricsBuffer
from mental_health_hpo.tracking.masking import flatten_params
from mental_health_hpo.tracking.mlflow_tracker import TrialTracker
from mental_health_hpo.tracking.pending import PendingRuns, is_pending

__all__ = [
    "BreakerOptions",
    "CircuitBreaker",
    "MetricPoint",
    "MetricsBuffer",
    "PendingRuns",
    "TrackerUnavailableError",
    "TrialTracker",
    "create_owned_run",
    "end_abandoned_runs",
    "flatten_params",
    "is_pending",
]
