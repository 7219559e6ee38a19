"""The evidence threshold chosen on validation: the F1-best grid value, ties to 0.5."""

from __future__ import annotations

import pandas as pd
import pytest

from mental_health_hpo.metrics.thresholds import (
    choose_evidence_threshold,
    sentence_f1_macro,
    with_evidence_threshold,
)


def _merged(probs: list[list[float]], gold: list[list[int]]) -> pd.DataFrame:
    """One SLEEP_ISSUES pair per row; label 1 where the row has gold evidence."""
    return pd.DataFrame(
        {
            "post_id": [f"p{i}" for i in range(len(probs))],
            "criterion": ["SLEEP_ISSUES"] * len(probs),
            "label": [int(bool(g)) for g in gold],
            "gold_sentences": gold,
            "sentence_probs": probs,
            "pred_sentences": [[i for i, p in enumerate(row) if p >= 0.5] for row in probs],
        }
    )


def test_the_threshold_that_separates_validation_is_chosen() -> None:
    # Evidence sentences score 0.8-0.9, the others 0.6-0.7: at 0.5 every sentence is predicted.
    validation = _merged([[0.9, 0.6], [0.7, 0.85], [0.65, 0.6]], [[0], [1], []])
    assert sentence_f1_macro(validation) == pytest.approx(0.5)
    chosen = choose_evidence_threshold(validation, (0.3, 0.5, 0.8))
    assert chosen.value == 0.8
    assert chosen.validation_f1_macro == pytest.approx(1.0)
    applied = with_evidence_threshold(validation, chosen.value)
    assert list(applied["pred_sentences"]) == [[0], [1], []]
    assert list(validation["pred_sentences"]) == [[0, 1], [0, 1], [0, 1]]  # input left as it was


def test_a_flat_validation_keeps_the_default() -> None:
    validation = _merged([[0.95], [0.95]], [[0], [0]])  # every grid value scores F1 1.0
    assert choose_evidence_threshold(validation, (0.2, 0.4, 0.6, 0.9)).value == 0.4
    assert choose_evidence_threshold(validation, (0.1, 0.5, 0.9)).value == 0.5


def test_span_head_tables_are_left_alone() -> None:
    spans = _merged([[], []], [[0], []]).assign(pred_sentences=[[0], [1]])
    assert with_evidence_threshold(spans, 0.9) is spans
    assert choose_evidence_threshold(spans).value == 0.5


@pytest.mark.parametrize("grid", [(), (0.0, 0.5), (0.5, 1.0)])
def test_a_bad_grid_names_its_key(grid: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match=r"evidence_thresholds: expected .* in \(0, 1\)"):
        choose_evidence_threshold(_merged([[0.5]], [[0]]), grid)
