"""Metrics of hand-made predictions give the answers worked out by hand, in the report's shape.

Covers the edge cases the report must get right: threshold and score ties, criteria without
positives (empty classes) and pairs without evidence.
"""

from __future__ import annotations

import pandas as pd
import pytest

from mental_health_hpo.evaluation import metrics_section
from mental_health_hpo.metrics import validation_metrics

from .support import TEXT, hand_made_merged


def _section(merged: pd.DataFrame) -> dict:
    return metrics_section(validation_metrics(merged))


def test_hand_made_predictions() -> None:
    section = _section(hand_made_merged())
    criteria = section["criteria_matching"]
    assert criteria["accuracy"] == pytest.approx(4 / 6)
    assert criteria["f1_macro"] == pytest.approx(0.4)  # SLEEP 0.8, FATIGUE 0.0
    assert criteria["f1_micro"] == pytest.approx(2 / 3)  # tp 2, fp 1, fn 1
    assert criteria["precision_macro"] == pytest.approx(1 / 3)
    assert criteria["recall_macro"] == pytest.approx(0.5)
    assert criteria["macro_pr_auc"] == pytest.approx(1.0)  # positives ranked first in both
    sleep, fatigue = criteria["per_criterion"]
    assert sleep == {
        "id": "SLEEP_ISSUES",
        "f1": pytest.approx(0.8),
        "precision": pytest.approx(2 / 3),
        "recall": 1.0,
        "pr_auc": 1.0,  # the two 0.9 positives tie: one threshold
        "confusion_matrix": [[0, 1], [0, 2]],
        "support": 2,
    }
    assert fatigue["confusion_matrix"] == [[2, 0], [1, 0]] and fatigue["f1"] == 0.0
    evidence = section["evidence_binding"]
    assert evidence["exact_match"] == pytest.approx(2 / 3)
    assert evidence["f1"] == pytest.approx((1 + 1 + 0.5) / 3)  # "I can't sl" vs the sentence
    assert evidence["char_f1"] == pytest.approx((2 + 20 / 31) / 3)
    assert evidence["null_span_accuracy"] == pytest.approx(2 / 3)  # c/FATIGUE claims a span
    assert (evidence["n_with_evidence"], evidence["n_without_evidence"]) == (3, 3)


def _pairs(labels: list[int], probs: list[float], criterion: str = "ANHEDONIA") -> pd.DataFrame:
    n = len(labels)
    return pd.DataFrame(
        {
            "post_id": [f"p{i}" for i in range(n)],
            "criterion": [criterion] * n,
            "label": labels,
            "alignment": ["unaligned" if y else "none" for y in labels],
            "gold_spans": [[] for _ in labels],
            "text": [TEXT] * n,
            "prob": probs,
            "pred_start": [-1] * n,
            "pred_end": [-1] * n,
        }
    )


def test_a_prob_equal_to_the_threshold_is_positive() -> None:
    (entry,) = _section(_pairs([1, 0], [0.5, 0.49999]))["criteria_matching"]["per_criterion"]
    assert entry["confusion_matrix"] == [[1, 0], [0, 1]] and entry["f1"] == 1.0


def test_tied_scores_form_one_threshold_for_pr_auc() -> None:
    # Two pairs at 0.7, one positive: precision 1/2 at recall 1 whatever their order.
    for labels in ([1, 0], [0, 1]):
        (entry,) = _section(_pairs(labels, [0.7, 0.7]))["criteria_matching"]["per_criterion"]
        assert entry["pr_auc"] == pytest.approx(0.5)


def test_empty_class_correctly_never_predicted_scores_one_and_has_no_pr_auc() -> None:
    merged = pd.concat(
        [_pairs([0, 0], [0.1, 0.2], "FATIGUE"), _pairs([1, 0], [0.9, 0.1], "ANHEDONIA")]
    )
    criteria = _section(merged)["criteria_matching"]
    by_id = {c["id"]: c for c in criteria["per_criterion"]}
    empty = by_id["FATIGUE"]
    assert (empty["f1"], empty["precision"], empty["recall"]) == (1.0, 1.0, 1.0)
    assert empty["pr_auc"] == 0.0 and empty["support"] == 0
    assert criteria["macro_pr_auc"] == pytest.approx(1.0)  # the empty class is left out


def test_empty_class_with_a_false_alarm_scores_zero() -> None:
    (entry,) = _section(_pairs([0, 0], [0.9, 0.1]))["criteria_matching"]["per_criterion"]
    assert (entry["f1"], entry["precision"], entry["recall"]) == (0.0, 0.0, 0.0)


def test_no_evidence_pairs() -> None:
    merged = _pairs([0, 0, 1], [0.1, 0.2, 0.9])  # the positive is unaligned: skipped
    evidence = _section(merged)["evidence_binding"]
    assert evidence["null_span_accuracy"] == 1.0
    assert evidence["n_with_evidence"] == 0 and evidence["n_without_evidence"] == 2
    assert (evidence["exact_match"], evidence["f1"], evidence["char_f1"]) == (0.0, 0.0, 0.0)
