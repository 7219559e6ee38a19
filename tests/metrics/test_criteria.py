"""Known answers for the criteria metrics: hand-made predictions, ties, empty classes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from mental_health_hpo.constants import CRITERIA
from mental_health_hpo.metrics import (
    average_precision,
    criteria_metrics,
    criteria_metrics_from_matrix,
    precision_recall_f1,
)

A, B = "DEPRESSED_MOOD", "ANHEDONIA"


def test_hand_made_two_criteria() -> None:
    # A: tp=2, fp=1, fn=1, tn=1 -> p = r = f1 = 2/3. B: tp=1, fp=0, fn=0, tn=2 -> 1.0.
    labels = [1, 1, 1, 0, 0, 1, 0, 0]
    probs = [0.9, 0.8, 0.2, 0.7, 0.1, 0.6, 0.4, 0.3]
    names = [A, A, A, A, A, B, B, B]
    metrics = criteria_metrics(labels, probs, names)
    a, b = metrics["per_criterion"][A], metrics["per_criterion"][B]
    assert a["confusion"] == [[1, 1], [1, 2]]
    assert (a["precision"], a["recall"], a["f1"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert a["support"] == 3 and a["accuracy"] == pytest.approx(3 / 5)
    assert b["confusion"] == [[2, 0], [0, 1]]
    assert (b["f1"], b["pr_auc"]) == (1.0, 1.0)
    # A ranking 0.9+, 0.8+, 0.7-, 0.2+, 0.1-: AP = 1/3 * (1 + 1 + 3/4)
    assert a["pr_auc"] == pytest.approx((1 + 1 + 0.75) / 3)
    assert metrics["accuracy"] == pytest.approx(6 / 8)
    assert metrics["f1_macro"] == pytest.approx((2 / 3 + 1) / 2)
    assert metrics["precision_macro"] == pytest.approx((2 / 3 + 1) / 2)
    assert metrics["recall_macro"] == pytest.approx((2 / 3 + 1) / 2)
    assert metrics["f1_micro"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))  # tp 3, fp 1, fn 1
    assert metrics["macro_pr_auc"] == pytest.approx(((1 + 1 + 0.75) / 3 + 1) / 2)
    assert set(metrics["per_criterion"]) == {A, B}
    assert metrics["n_pairs"] == 8.0


def test_threshold_ties_count_as_positive() -> None:
    metrics = criteria_metrics([1, 0], [0.5, 0.49], [A, A], threshold=0.5)
    assert metrics["per_criterion"][A]["confusion"] == [[1, 0], [0, 1]]


def test_empty_class_correctly_never_predicted_scores_one() -> None:
    metrics = criteria_metrics([0, 0, 1], [0.1, 0.2, 0.9], [A, A, B])
    a = metrics["per_criterion"][A]
    assert (a["precision"], a["recall"], a["f1"], a["support"]) == (1.0, 1.0, 1.0, 0)
    assert a["pr_auc"] == 0.0  # undefined without positives: reported 0.0 ...
    assert metrics["macro_pr_auc"] == 1.0  # ... and left out of the macro average
    assert metrics["f1_macro"] == 1.0


def test_empty_class_with_false_alarms_scores_zero() -> None:
    a = criteria_metrics([0, 0], [0.9, 0.2], [A, A])["per_criterion"][A]
    assert (a["precision"], a["recall"], a["f1"]) == (0.0, 0.0, 0.0)


def test_missed_positives_without_predictions_score_zero() -> None:
    a = criteria_metrics([1, 0], [0.1, 0.2], [A, A])["per_criterion"][A]
    assert (a["precision"], a["recall"], a["f1"]) == (0.0, 0.0, 0.0)


def test_all_empty_never_gives_nan() -> None:
    metrics = criteria_metrics([], [], [])
    values = [v for k, v in metrics.items() if k != "per_criterion"]
    assert not any(np.isnan(values))
    assert metrics["macro_pr_auc"] == 0.0 and metrics["f1_micro"] == 1.0


def test_precision_recall_f1_zero_division_rule() -> None:
    assert precision_recall_f1(0, 0, 0) == (1.0, 1.0, 1.0)
    assert precision_recall_f1(0, 2, 0) == (0.0, 0.0, 0.0)
    assert precision_recall_f1(0, 0, 2) == (0.0, 0.0, 0.0)
    assert precision_recall_f1(1, 1, 0) == pytest.approx((0.5, 1.0, 2 / 3))


def test_average_precision_with_ties_matches_sklearn() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        labels = rng.integers(0, 2, size=30)
        labels[0] = 1
        scores = rng.integers(0, 5, size=30) / 4  # many ties
        assert average_precision(labels, scores) == pytest.approx(
            average_precision_score(labels, scores)
        )
    # all scores tied: precision is the positive rate, recall jumps to 1 at once
    assert average_precision([1, 0, 0, 1], [0.5] * 4) == pytest.approx(0.5)
    assert average_precision([0, 0], [0.3, 0.9]) == 0.0


def test_matrix_input_equals_long_input() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, size=(6, len(CRITERIA)))
    probs = rng.random((6, len(CRITERIA)))
    wide = criteria_metrics_from_matrix(labels, probs)
    names = np.tile(np.asarray(CRITERIA), 6)
    assert wide == criteria_metrics(labels.reshape(-1), probs.reshape(-1), names)
    assert list(wide["per_criterion"]) == list(CRITERIA)


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="lengths"):
        criteria_metrics([1], [0.1, 0.2], [A])
