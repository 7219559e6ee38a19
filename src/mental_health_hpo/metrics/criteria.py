"""Criteria-matching metrics over (post, criterion) pairs: plain dicts of floats, never NaN.

Conventions (chosen so that every value is defined and comparable across trials):

- A pair is predicted positive when ``prob >= threshold`` (a tie with the threshold is positive).
- Zero division: precision (no predicted positives) and recall (no gold positives) are 1.0 when
  the criterion has neither gold nor predicted positives (nothing to find, nothing claimed),
  otherwise 0.0; F1 is 0.0 when precision + recall is 0. So a criterion with no positives that
  the model correctly never predicts scores f1 = precision = recall = 1.0, and one with false
  alarms scores 0.0. The same rule applies to the micro averages.
- PR-AUC is average precision (the step-wise sum of sklearn's ``average_precision_score``);
  tied scores form one threshold. A criterion without gold positives has no defined PR-AUC: its
  ``pr_auc`` is reported as 0.0 and it is left out of ``macro_pr_auc`` (0.0 if no criterion
  has a positive).
- Macro averages are means over the criteria that have at least one pair in the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mental_health_hpo.constants import CRITERIA


def _ratio(numerator: float, denominator: float, when_empty: float) -> float:
    return numerator / denominator if denominator > 0 else when_empty


def precision_recall_f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 with the zero-division rule of this module."""
    agree_empty = 1.0 if tp + fp + fn == 0 else 0.0
    precision = _ratio(tp, tp + fp, agree_empty)
    recall = _ratio(tp, tp + fn, agree_empty)
    f1 = _ratio(2 * precision * recall, precision + recall, 0.0)
    return precision, recall, f1


def average_precision(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray
) -> float:
    """Area under the precision-recall curve as average precision; 0.0 without positives.

    AP = sum over distinct score thresholds (descending) of (R_k - R_{k-1}) * P_k; pairs with
    tied scores enter together, so their order does not matter.
    """
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    positives = int(y.sum())
    if positives == 0:
        return 0.0
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tps = np.cumsum(y)[last_of_tie]
    predicted = last_of_tie + 1
    precision = tps / predicted
    recall = tps / positives
    previous_recall = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - previous_recall) * precision))


def confusion(labels: np.ndarray, predicted: np.ndarray) -> list[list[int]]:
    """[[tn, fp], [fn, tp]] of 0/1 arrays."""
    tp = int(np.sum((labels == 1) & (predicted == 1)))
    fp = int(np.sum((labels == 0) & (predicted == 1)))
    fn = int(np.sum((labels == 1) & (predicted == 0)))
    tn = int(np.sum((labels == 0) & (predicted == 0)))
    return [[tn, fp], [fn, tp]]


def criteria_metrics(
    labels: Sequence[int] | np.ndarray,
    probs: Sequence[float] | np.ndarray,
    criterion_of_row: Sequence[str] | np.ndarray,
    threshold: float = 0.5,
    criteria: Sequence[str] = CRITERIA,
) -> dict[str, Any]:
    """Metrics of long-format predictions: one row per (post, criterion).

    Returns ``accuracy``, ``f1_macro``, ``f1_micro``, ``precision_macro``, ``recall_macro``,
    ``macro_pr_auc``, ``n_pairs``, ``all_negative_accuracy`` and ``prevalence`` (the accuracy of
    "always negative" and the share of positive pairs, to read accuracy against) and
    ``per_criterion[name]`` with ``f1``, ``precision``,
    ``recall``, ``pr_auc``, ``accuracy``, ``confusion`` ([[tn, fp], [fn, tp]]) and ``support``
    (gold positives). Criteria without rows are absent from ``per_criterion``.
    """
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    names = np.asarray(criterion_of_row).reshape(-1)
    if not len(y) == len(p) == len(names):
        raise ValueError(
            f"labels, probs, criteria lengths differ: {len(y)}, {len(p)}, {len(names)}"
        )
    predicted = (p >= threshold).astype(np.int64)
    per_criterion: dict[str, dict[str, Any]] = {}
    for name in criteria:
        rows = names == name
        if not rows.any():
            continue
        per_criterion[name] = _one_criterion(y[rows], predicted[rows], p[rows])
    (_, fp), (fn, tp) = confusion(y, predicted)
    _, _, f1_micro = precision_recall_f1(tp, fp, fn)
    scored = [m for m in per_criterion.values() if m["support"] > 0]
    return {
        "accuracy": float(np.mean(y == predicted)) if len(y) else 0.0,
        "f1_macro": _mean([m["f1"] for m in per_criterion.values()]),
        "f1_micro": f1_micro,
        "precision_macro": _mean([m["precision"] for m in per_criterion.values()]),
        "recall_macro": _mean([m["recall"] for m in per_criterion.values()]),
        "macro_pr_auc": _mean([m["pr_auc"] for m in scored]),
        "n_pairs": float(len(y)),
        # Next to accuracy: what "always negative" scores, and how rare positives are.
        "all_negative_accuracy": float(np.mean(y == 0)) if len(y) else 0.0,
        "prevalence": float(np.mean(y == 1)) if len(y) else 0.0,
        "per_criterion": per_criterion,
    }


def criteria_metrics_from_matrix(
    labels: np.ndarray,
    probs: np.ndarray,
    threshold: float = 0.5,
    criteria: Sequence[str] = CRITERIA,
) -> dict[str, Any]:
    """``criteria_metrics`` of wide (N posts, C criteria) arrays, columns in ``criteria`` order."""
    y = np.asarray(labels)
    names = np.broadcast_to(np.asarray(criteria), y.shape)
    return criteria_metrics(
        y.reshape(-1), np.asarray(probs).reshape(-1), names.reshape(-1), threshold, criteria
    )


def _one_criterion(y: np.ndarray, predicted: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    matrix = confusion(y, predicted)
    (tn, fp), (fn, tp) = matrix
    precision, recall, f1 = precision_recall_f1(tp, fp, fn)
    return {
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "pr_auc": average_precision(y, probs),
        "accuracy": (tp + tn) / len(y),
        "confusion": matrix,
        "support": int(y.sum()),
    }


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else 0.0
