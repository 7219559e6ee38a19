"""Validation metrics of a merged prediction table, and a flat view for trackers/checkpoints."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mental_health_hpo.metrics.criteria import criteria_metrics
from mental_health_hpo.metrics.evidence import evidence_metrics


def validation_metrics(merged: pd.DataFrame, threshold: float = 0.5) -> dict[str, Any]:
    """``{"criteria": criteria_metrics(...), "evidence": evidence_metrics(...)}``.

    ``merged`` is ``training.windows.merge_window_predictions`` output (columns ``label``,
    ``prob``, ``criterion``, ``gold_spans``, ``alignment``, ``pred_start``, ``pred_end``,
    ``text``). Evidence metrics skip positive pairs without an aligned span (unknown gold).
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
    return {"criteria": criteria, "evidence": evidence}


def flatten_metrics(metrics: dict[str, Any], prefix: str = "val_") -> dict[str, float]:
    """One flat dict of floats: ``val_f1_macro``, ``val_exact_match``, ``val_f1_ANHEDONIA``, ...

    Criteria keys keep their names, evidence keys too except token F1 (``evidence_f1``, to not
    clash with criteria names); per-criterion values become ``<metric>_<CRITERION>``
    (confusion matrices are left out).
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
    return flat
