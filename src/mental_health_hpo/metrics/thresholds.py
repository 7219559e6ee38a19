"""Evidence decision thresholds chosen on validation, for the model and its baseline alike.

Why: the sentence-evidence head is trained with an up-weighted positive class (most cells are
"no"), so its probabilities are not calibrated at 0.5; the TF-IDF baseline's classifier is not
either. Both get the same treatment: the threshold that maximises sentence-evidence macro-F1 on
the validation split, from one shared grid, and then one scoring of the test split with it. The
test split never takes part in the choice.

Ties (a flat F1 over several thresholds, common on small splits) go to the threshold closest to
0.5, so an uninformative validation split leaves the default in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from mental_health_hpo.metrics.sentence_evidence import sentence_evidence_metrics

#: The grid both the model and the baseline choose their evidence threshold from.
EVIDENCE_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class ChosenThreshold:
    """The threshold picked on validation, and the validation macro-F1 it reached there."""

    value: float
    validation_f1_macro: float
    grid: tuple[float, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "value": self.value,
            "chosen_on": "validation",
            "validation_sentence_evidence_f1_macro": self.validation_f1_macro,
            "grid": list(self.grid),
        }


def validate_grid(grid: Sequence[float], key: str) -> tuple[float, ...]:
    """The grid as a tuple; a clear error naming ``key`` when it is empty or outside (0, 1)."""
    values = tuple(float(value) for value in grid)
    if not values or any(not 0.0 < value < 1.0 for value in values):
        raise ValueError(f"{key}: expected a non-empty list of thresholds in (0, 1), got {grid!r}")
    return values


def best_on_grid(score_at: dict[float, float], grid: Sequence[float]) -> tuple[float, float]:
    """(threshold, score) with the highest score; ties to the threshold nearest 0.5."""
    ranked = sorted(grid, key=lambda value: (-score_at[value], abs(value - DEFAULT_THRESHOLD)))
    return ranked[0], score_at[ranked[0]]


def has_sentence_probs(merged: pd.DataFrame) -> bool:
    """Whether the head scored every sentence (the sentence head; span heads do not)."""
    return "sentence_probs" in merged and bool(merged["sentence_probs"].map(len).sum())


def with_evidence_threshold(merged: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """A copy of ``merged`` whose ``pred_sentences`` are the sentences at or above ``threshold``.

    Tables of span heads (no per-sentence probabilities) come back unchanged: their sentences
    are the ones the predicted span covers.
    """
    if not has_sentence_probs(merged):
        return merged
    result = merged.copy()
    result["pred_sentences"] = [
        [index for index, prob in enumerate(probs) if prob >= threshold]
        for probs in merged["sentence_probs"]
    ]
    return result


def sentence_f1_macro(merged: pd.DataFrame) -> float:
    """Sentence-evidence macro-F1 of a merged table (0 for a table without sentence columns)."""
    if "gold_sentences" not in merged or "pred_sentences" not in merged:
        return 0.0
    metrics = sentence_evidence_metrics(
        list(merged["gold_sentences"]),
        list(merged["pred_sentences"]),
        list(merged["criterion"]),
        list(merged["label"]),
    )
    return float(metrics["f1_macro"])


def choose_evidence_threshold(
    validation: pd.DataFrame, grid: Sequence[float] = EVIDENCE_THRESHOLDS
) -> ChosenThreshold:
    """The grid threshold with the best validation sentence-evidence macro-F1.

    A table without per-sentence probabilities keeps the default (there is nothing to choose).
    """
    values = validate_grid(grid, "evidence_thresholds")
    if not has_sentence_probs(validation):
        return ChosenThreshold(DEFAULT_THRESHOLD, sentence_f1_macro(validation), values)
    score_at = {
        value: sentence_f1_macro(with_evidence_threshold(validation, value)) for value in values
    }
    value, score = best_on_grid(score_at, values)
    return ChosenThreshold(value, score, values)
