"""Sentence-level evidence metrics on hand-worked examples."""

from __future__ import annotations

import pytest

from mental_health_hpo.metrics import flatten_metrics, sentence_evidence_metrics, validation_metrics


def test_counts_cells_per_criterion_and_leaves_unaligned_positives_out() -> None:
    metrics = sentence_evidence_metrics(
        gold_sentences=[[1], [0, 2], [], [], []],
        predicted_sentences=[[1, 3], [2], [0], [], [4]],
        criterion_of_row=["FATIGUE", "SLEEP_ISSUES", "FATIGUE", "SLEEP_ISSUES", "ANHEDONIA"],
        labels=[1, 1, 0, 0, 1],  # the last: a positive without aligned evidence
    )
    fatigue, sleep = metrics["per_criterion"]["FATIGUE"], metrics["per_criterion"]["SLEEP_ISSUES"]
    assert (fatigue["tp"], fatigue["fp"], fatigue["fn"]) == (1, 2, 0)
    assert fatigue["precision"] == pytest.approx(1 / 3) and fatigue["recall"] == 1.0
    assert (sleep["tp"], sleep["fp"], sleep["fn"]) == (1, 0, 1)
    assert "ANHEDONIA" not in metrics["per_criterion"]  # its only pair is unknown gold
    assert metrics["n_unaligned_positive_pairs"] == 1
    assert metrics["f1_macro"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert metrics["share_pairs_without_evidence"] == pytest.approx(2 / 4)


def test_always_none_scores_zero_and_a_criterion_without_gold_is_not_averaged() -> None:
    gold = [[0], [], [2]]
    criteria = ["FATIGUE", "ANHEDONIA", "FATIGUE"]
    none = sentence_evidence_metrics(gold, [[], [], []], criteria, [1, 0, 1])
    assert none["f1_macro"] == 0.0 and none["recall_macro"] == 0.0
    perfect = sentence_evidence_metrics(gold, [[0], [], [2]], criteria, [1, 0, 1])
    assert perfect["f1_macro"] == 1.0 and perfect["per_criterion"]["ANHEDONIA"]["support"] == 0
    alarm = sentence_evidence_metrics(gold, [[0], [1], [2]], criteria, [1, 0, 1])
    assert alarm["per_criterion"]["ANHEDONIA"]["f1"] == 0.0
    assert alarm["f1_macro"] == 1.0 and alarm["f1_micro"] == pytest.approx(0.8)


def test_validation_metrics_flatten_sentence_evidence_names() -> None:
    import pandas as pd

    merged = pd.DataFrame(
        {
            "post_id": ["a", "a"],
            "criterion": ["FATIGUE", "SLEEP_ISSUES"],
            "label": [1, 0],
            "alignment": ["exact", "none"],
            "gold_spans": [[[0, 5]], []],
            "gold_sentences": [[0], []],
            "pred_sentences": [[0], [1]],
            "text": ["Tired. Fine."] * 2,
            "prob": [0.9, 0.1],
            "pred_start": [0, -1],
            "pred_end": [6, -1],
        }
    )
    flat = flatten_metrics(validation_metrics(merged))
    assert flat["val_sentence_evidence_f1_macro"] == 1.0
    assert flat["val_sentence_evidence_f1_SLEEP_ISSUES"] == 0.0
    assert flat["val_share_without_evidence"] == 0.5
    assert flat["val_all_negative_accuracy"] == 0.5 and flat["val_prevalence"] == 0.5
