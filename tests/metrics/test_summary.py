"""validation_metrics over a merged table, and the flat names the trainer logs."""

from __future__ import annotations

import pandas as pd
import pytest

from mental_health_hpo.metrics import flatten_metrics, validation_metrics

TEXT = "I can't sleep. I am fine otherwise."


def merged_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "post_id": ["p", "p", "p"],
            "criterion": ["SLEEP_ISSUES", "FATIGUE", "ANHEDONIA"],
            "label": [1, 0, 1],
            "alignment": ["exact", "none", "unaligned"],
            "gold_spans": [[[0, 14]], [], []],
            "text": [TEXT] * 3,
            "prob": [0.8, 0.3, 0.4],
            "pred_start": [0, -1, 0],
            "pred_end": [14, -1, 5],
        }
    )


def test_validation_metrics_skip_unaligned_positives_for_evidence() -> None:
    metrics = validation_metrics(merged_table())
    evidence = metrics["evidence"]
    assert evidence["n_with_evidence"] == 1.0 and evidence["n_without_evidence"] == 1.0
    assert evidence["exact_match"] == 1.0 and evidence["null_span_accuracy"] == 1.0
    assert metrics["criteria"]["accuracy"] == pytest.approx(2 / 3)


def test_flat_names_are_stable() -> None:
    flat = flatten_metrics(validation_metrics(merged_table()))
    for name in (
        "val_accuracy",
        "val_f1_macro",
        "val_f1_micro",
        "val_precision_macro",
        "val_recall_macro",
        "val_macro_pr_auc",
        "val_exact_match",
        "val_evidence_f1",
        "val_char_f1",
        "val_null_span_accuracy",
        "val_f1_SLEEP_ISSUES",
        "val_support_FATIGUE",
    ):
        assert name in flat and isinstance(flat[name], float)
    assert not any("confusion" in name for name in flat)
