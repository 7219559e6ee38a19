"""Sentence-level evidence metrics: precision, recall and F1 of (post sentence, criterion) cells.

Why sentences: ReDSM5 annotates evidence as whole sentences, and every evidence head (the
sentence head directly, span heads through the sentences their span covers) can be scored on
them, so one number compares every head and the TF-IDF baseline.

Conventions:

- Unit: a (post, sentence, criterion) cell; a cell is a true positive when the sentence is gold
  evidence for the criterion and predicted so. Per criterion, TP/FP/FN are summed over pairs.
- A positive pair whose evidence could not be aligned to the post (no gold sentence) is left
  out and counted in ``n_unaligned_positive_pairs``: its gold is unknown, never guessed.
- Zero division as in ``metrics.criteria``; ``f1_macro``, ``precision_macro`` and
  ``recall_macro`` average the criteria with gold evidence in the data (a criterion with none
  has no defined recall; ``per_criterion`` still lists its false alarms). "Always none" scores
  F1 0 on every criterion with evidence.
- ``share_pairs_without_evidence``: the share of scored pairs with no gold sentence, i.e. the
  accuracy an "always none" evidence head gets on pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mental_health_hpo.constants import CRITERIA
from mental_health_hpo.metrics.criteria import precision_recall_f1


def sentence_evidence_metrics(
    gold_sentences: Sequence[Sequence[int]],
    predicted_sentences: Sequence[Sequence[int]],
    criterion_of_row: Sequence[str],
    labels: Sequence[int],
    criteria: Sequence[str] = CRITERIA,
) -> dict[str, Any]:
    """Metrics of one row per (post, criterion): gold and predicted evidence sentence ids.

    Returns ``f1_macro``, ``precision_macro``, ``recall_macro``, ``f1_micro``,
    ``n_evidence_sentences`` (gold cells), ``n_predicted_sentences``, ``n_pairs``,
    ``n_unaligned_positive_pairs``, ``share_pairs_without_evidence`` and
    ``per_criterion[name]`` with ``f1``, ``precision``, ``recall``, ``tp``, ``fp``, ``fn``,
    ``support`` (gold evidence sentences).
    """
    if not len(gold_sentences) == len(predicted_sentences) == len(criterion_of_row) == len(labels):
        raise ValueError("gold, predicted, criterion and label columns must have the same length")
    counts = {name: [0, 0, 0] for name in criteria}  # tp, fp, fn
    seen: set[str] = set()
    unaligned = scored = without = 0
    for gold_raw, predicted_raw, criterion, label in zip(
        gold_sentences, predicted_sentences, criterion_of_row, labels, strict=True
    ):
        gold, predicted = {int(i) for i in gold_raw}, {int(i) for i in predicted_raw}
        if int(label) == 1 and not gold:
            unaligned += 1
            continue
        if criterion not in counts:
            continue
        seen.add(str(criterion))
        scored += 1
        without += int(not gold)
        cell = counts[str(criterion)]
        cell[0] += len(gold & predicted)
        cell[1] += len(predicted - gold)
        cell[2] += len(gold - predicted)
    per_criterion: dict[str, dict[str, Any]] = {}
    for name in criteria:
        if name not in seen:
            continue
        tp, fp, fn = counts[name]
        precision, recall, f1 = precision_recall_f1(tp, fp, fn)
        per_criterion[name] = {
            "f1": f1,
            "precision": precision,
            "recall": recall,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "support": tp + fn,
        }
    with_gold = [m for m in per_criterion.values() if m["support"] > 0]
    tp, fp, fn = (sum(counts[name][i] for name in seen) for i in range(3))
    return {
        "f1_macro": _mean([m["f1"] for m in with_gold]),
        "precision_macro": _mean([m["precision"] for m in with_gold]),
        "recall_macro": _mean([m["recall"] for m in with_gold]),
        "f1_micro": precision_recall_f1(tp, fp, fn)[2] if tp + fp + fn else 0.0,
        "n_evidence_sentences": float(tp + fn),
        "n_predicted_sentences": float(tp + fp),
        "n_pairs": float(scored),
        "n_unaligned_positive_pairs": float(unaligned),
        "share_pairs_without_evidence": without / scored if scored else 0.0,
        "per_criterion": per_criterion,
    }


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else 0.0
