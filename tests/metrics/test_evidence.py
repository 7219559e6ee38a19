"""Known answers for the evidence metrics: EM, token F1, char F1, null-span accuracy."""

from __future__ import annotations

import pytest

from mental_health_hpo.metrics import (
    char_f1,
    evidence_metrics,
    exact_match,
    normalize_answer,
    token_f1,
)

TEXT = "I can't sleep. The nights are long and I feel tired."
SLEEP = (0, 14)  # "I can't sleep."
NIGHTS = (15, 34)  # "The nights are long"


def test_squad_normalisation() -> None:
    assert normalize_answer("  The Nights, are LONG! ") == "nights are long"
    assert exact_match("the nights are long.", "Nights are long") == 1.0
    assert exact_match("nights", "nights are long") == 0.0


def test_token_f1_known_values() -> None:
    # gold normalises to 5 tokens ("the" dropped): precision 1, recall 3/5
    assert token_f1("nights are long", "the nights are long and dark") == pytest.approx(0.75)
    assert token_f1("", "") == 1.0
    assert token_f1("a", "nights") == 0.0  # "a" is an article: empty after normalisation
    assert token_f1("cats", "dogs") == 0.0


def test_char_f1_known_values() -> None:
    assert char_f1((0, 10), (0, 10)) == 1.0
    assert char_f1((0, 10), (5, 15)) == pytest.approx(0.5)
    assert char_f1((0, 4), (0, 8)) == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert char_f1(None, (0, 8)) == 0.0
    assert char_f1((20, 30), (0, 8)) == 0.0


def test_pairs_with_gold_score_em_f1_and_pairs_without_score_null_accuracy() -> None:
    gold = [[list(SLEEP)], [list(NIGHTS)], [list(SLEEP)], [], [], []]
    predicted = [SLEEP, (15, 29), None, None, (-1, -1), (0, 5)]
    assert TEXT[NIGHTS[0] : NIGHTS[1]] == "The nights are long"
    metrics = evidence_metrics(gold, predicted, [TEXT] * 6)
    assert metrics["n_with_evidence"] == 3.0 and metrics["n_without_evidence"] == 3.0
    assert metrics["exact_match"] == pytest.approx(1 / 3)
    # "The nights are" vs "The nights are long": tokens 2 / 3 -> f1 = 2*1*(2/3)/(5/3) = 0.8
    assert metrics["f1"] == pytest.approx((1 + 0.8 + 0) / 3)
    assert metrics["char_f1"] == pytest.approx((1 + 28 / 33 + 0) / 3)  # 14 of 19 chars
    assert metrics["null_span_accuracy"] == pytest.approx(2 / 3)


def test_best_of_several_gold_spans() -> None:
    metrics = evidence_metrics([[list(SLEEP), list(NIGHTS)]], [NIGHTS], [TEXT])
    assert metrics["exact_match"] == 1.0 and metrics["char_f1"] == 1.0


def test_empty_groups_give_zero_not_nan() -> None:
    only_null = evidence_metrics([[]], [None], [TEXT])
    assert only_null["exact_match"] == 0.0 and only_null["f1"] == 0.0
    assert only_null["null_span_accuracy"] == 1.0
    nothing = evidence_metrics([], [], [])
    assert all(value == 0.0 for value in nothing.values())


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="same length"):
        evidence_metrics([[]], [], [TEXT])
