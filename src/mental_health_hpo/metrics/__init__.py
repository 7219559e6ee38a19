"""Criteria and evidence metrics: plain dicts of floats with stable names, never NaN.

Framework-free (no kedro, no mlflow).
"""

from mental_health_hpo.metrics.criteria import (
    average_precision,
    criteria_metrics,
    criteria_metrics_from_matrix,
    precision_recall_f1,
)
from mental_health_hpo.metrics.evidence import (
    char_f1,
    evidence_metrics,
    exact_match,
    normalize_answer,
    token_f1,
)
from mental_health_hpo.metrics.sentence_evidence import sentence_evidence_metrics
from mental_health_hpo.metrics.summary import flatten_metrics, validation_metrics

__all__ = [
    "average_precision",
    "char_f1",
    "criteria_metrics",
    "criteria_metrics_from_matrix",
    "evidence_metrics",
    "exact_match",
    "flatten_metrics",
    "normalize_answer",
    "precision_recall_f1",
    "sentence_evidence_metrics",
    "token_f1",
    "validation_metrics",
]
