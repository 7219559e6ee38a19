"""MLflow publishing for trials and the disk-backed outage buffer. Never imports kedro."""

from mental_health_hpo.tracking.buffer import MetricPoint, MetricsBuffer
from mental_health_hpo.tracking.mlflow_tracker import TrialTracker, flatten_params

__all__ = ["MetricPoint", "MetricsBuffer", "TrialTracker", "flatten_params"]
