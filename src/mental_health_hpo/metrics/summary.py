"""Validation metrics of a merged prediction table, and a flat view for trackers/checkpoints."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mental_health_hpo.metrics.criteria import criteria_metrics
from mental_health_hpo.metrics.evidence import evidence_metrics
from mental_health_hpo.metrics.sentence_evidence import sentence_evidence_metrics

#: Per-criterion sentence-evidence values that reach the flat view (counts stay in the report).
_FLAT_SENTENCE_KEYS = ("f1", "precision", "recall")


def validation_metrics(merged: pd.DataFrame, threshold: float = 0.5) -> dict[str, Any]:
    """``{"criteria": ..., "evidence": ..., "sentence_evidence": ...}``.

    ``merged`` is ``training.windows.merge_window_predictions`` output (columns ``label``,
    ``prob``, ``criterion``, ``gold_spans``, ``alignment``, ``pred_start``, ``pred_end``,
    ``text``, ``gold_sentences``, ``pred_sentences``). Evidence metrics skip positive pairs
    without an aligned span (unknown gold). A table without the sentence columns (hand-made)
    scores its sentence evidence as empty, so the metric names are always the same.
    """
    criteria = criteria_metrics(merged["label"], merged["prob"], merged["criterion"], threshold)
    has_gold = merged["gold_spans"].map(len) > 0
    unknown = (merged["label"] == 1) & ~has_gold
    scored = merged[~unknown]
    evidence = evidence_metrics(
        list(scored["gold_spans"]),
        [(int(s), int(e)) for s, e in zip(scored["pred_start"], scored["pred_end"], strict=True)],
        list(scored["text"]),
    )
    empty = [[] for _ in range(len(merged))]
    gold = merged.get("gold_sentences", empty)
    predicted = merged.get("pred_sentences", empty)
    sentences = sentence_evidence_metrics(
        list(gold), list(predicted), list(merged["criterion"]), list(merged["label"])
    )
    return {"criteria": criteria, "evidence": evidence, "sentence_evidence": sentences}


def flatten_metrics(metrics: dict[str, Any], prefix: str = "val_") -> dict[str, float]:
    """One flat dict of floats: ``val_f1_macro``, ``val_exact_match``, ``val_f1_ANHEDONIA``, ...

    Criteria keys keep their names, evidence keys too except token F1 (``evidence_f1``, to not
    clash with criteria names); per-criterion values become ``<metric>_<CRITERION>``
    (confusion matrices are left out); sentence-evidence keys get ``sentence_evidence_``
    (``val_sentence_evidence_f1_macro``, ``val_sentence_evidence_f1_ANHEDONIA``).
    """
    flat: dict[str, float] = {}
    criteria = metrics.get("criteria", {})
    for key, value in criteria.items():
        if key == "per_criterion":
            for name, values in value.items():
                for metric, number in values.items():
                    if metric != "confusion":
                        flat[f"{prefix}{metric}_{name}"] = float(number)
        else:
            flat[f"{prefix}{key}"] = float(value)
    for key, value in metrics.get("evidence", {}).items():
        flat[f"{prefix}{'evidence_f1' if key == 'f1' else key}"] = float(value)
    for key, value in metrics.get("sentence_evidence", {}).items():
        if key != "per_criterion":
            flat[f"{prefix}sentence_evidence_{key}"] = float(value)
            continue
        for name, values in value.items():
            for metric in _FLAT_SENTENCE_KEYS:
                flat[f"{prefix}sentence_evidence_{metric}_{name}"] = float(values[metric])
    return flat
