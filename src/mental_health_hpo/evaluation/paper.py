"""The ReDSM5 authors' figures next to the project's, in the authors' label space.

The ReDSM5 paper's baselines are post-level, multi-label over 10 labels (the 9 symptoms and
NO_SYMPTOMS), one random 80/20 split (``random_state=42``), threshold 0.5, scikit-learn macro
and micro F1. The project predicts 9 (post, criterion) probabilities; NO_SYMPTOMS is "no
criterion" (gold: the post has no positive criterion; predicted: no probability reaches the
threshold). Figures are only comparable on the real corpus under ``conf/redsm5_paper``: the
report says which data it was computed on (``config.data_source``).

The Llama figure was chosen on the test split (its checkpoint was picked by test score); the
project never selects on test, so it is an optimistic reference, not a target.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from mental_health_hpo.constants import CRITERIA

NO_SYMPTOMS = "NO_SYMPTOMS"
PAPER_LABELS: tuple[str, ...] = (*CRITERIA, NO_SYMPTOMS)

#: The authors' test figures on the full corpus (macro-F1, micro-F1 where published).
ANCHORS: tuple[dict[str, Any], ...] = (
    {"model": "TF-IDF + linear SVM", "f1_macro": 0.28, "f1_micro": 0.39, "selected_on": "none"},
    {"model": "bert-base-uncased", "f1_macro": 0.36, "f1_micro": 0.51, "selected_on": "none"},
    {"model": "Llama-3.2-1B", "f1_macro": 0.489, "f1_micro": None, "selected_on": "test"},
)


def post_level_labels(merged: pd.DataFrame, threshold: float = 0.5) -> tuple[np.ndarray, ...]:
    """(gold, predicted) (posts, 10) 0/1 matrices in ``PAPER_LABELS`` order."""
    predicted = (
        merged["pred_label"] if "pred_label" in merged else (merged["prob"] >= threshold)
    ).astype(int)
    frame = merged.assign(pred=predicted.to_numpy())
    gold = frame.pivot_table(index="post_id", columns="criterion", values="label", aggfunc="max")
    pred = frame.pivot_table(index="post_id", columns="criterion", values="pred", aggfunc="max")
    gold = gold.reindex(columns=list(CRITERIA)).fillna(0).astype(int).to_numpy()
    pred = pred.reindex(columns=list(CRITERIA)).fillna(0).astype(int).to_numpy()
    gold = np.column_stack([gold, (gold.sum(axis=1) == 0).astype(int)])
    pred = np.column_stack([pred, (pred.sum(axis=1) == 0).astype(int)])
    return gold, pred


def paper_reference(merged: pd.DataFrame, threshold: float = 0.5) -> dict[str, Any]:
    """The project's post-level 10-label macro/micro F1 next to the authors' anchor figures."""
    gold, pred = post_level_labels(merged, threshold)
    per_label = f1_score(gold, pred, average=None, zero_division=0)
    return {
        "label_space": "post level, 9 symptoms + NO_SYMPTOMS, threshold 0.5",
        "project": {
            "f1_macro": float(f1_score(gold, pred, average="macro", zero_division=0)),
            "f1_micro": float(f1_score(gold, pred, average="micro", zero_division=0)),
            "n_posts": int(gold.shape[0]),
            "per_label_f1": {
                name: float(value) for name, value in zip(PAPER_LABELS, per_label, strict=True)
            },
        },
        "anchors": [dict(anchor) for anchor in ANCHORS],
        "note": (
            "anchors: the ReDSM5 authors' test figures on the full corpus (80/20 split, seed "
            "42); comparable only on the real corpus with the redsm5_paper environment. The "
            "Llama checkpoint was chosen on the test split."
        ),
    }


def paper_table(reference: dict[str, Any]) -> str:
    """Plain-text lines: the anchors and the project's figures, for logs and the CLI."""
    lines = [f"ReDSM5 paper reference ({reference['label_space']})"]
    for anchor in reference["anchors"]:
        micro = anchor["f1_micro"]
        lines.append(
            f"  {anchor['model']:<22} macro-F1 {anchor['f1_macro']:.3f}"
            f"  micro-F1 {'  n/a' if micro is None else f'{micro:.3f}'}"
            f"  (selected on {anchor['selected_on']})"
        )
    project = reference["project"]
    lines.append(
        f"  {'this project':<22} macro-F1 {project['f1_macro']:.3f}"
        f"  micro-F1 {project['f1_micro']:.3f}  ({project['n_posts']} test posts)"
    )
    return "\n".join(lines)
