"""The model's view of the data: one row per (post, criterion), with label and evidence spans.

The table layout is the contract documented in ``docs/architecture.md``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mental_health_hpo.constants import CRITERIA
from mental_health_hpo.data.alignment import AlignmentConfig, align_annotations
from mental_health_hpo.data.splits import SplitConfig, assign_splits
from mental_health_hpo.data.synthetic import SyntheticConfig, generate_synthetic

MODEL_INPUT_COLUMNS: tuple[str, ...] = (
    "post_id",
    "text",
    "criterion",
    "label",
    "status",
    "evidence_start",
    "evidence_end",
    "evidence_text",
    "evidence_spans",
    "alignment",
    "split",
)


def build_model_input(
    posts: pd.DataFrame, aligned_annotations: pd.DataFrame, splits: pd.Series
) -> pd.DataFrame:
    """Expand posts into (post, criterion) rows.

    A pair is ``positive`` (label 1) with any status-1 annotation, ``negative`` with only
    status-0 ones, ``absent`` with none. Only positive pairs carry spans; the primary span is the
    first aligned one in post order.
    """
    by_pair: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in aligned_annotations.itertuples(index=False):
        if row.DSM5_symptom in CRITERIA:
            by_pair.setdefault((str(row.post_id), str(row.DSM5_symptom)), []).append(row._asdict())

    rows: list[dict[str, Any]] = []
    for post_id, text in zip(posts["post_id"].astype(str), posts["text"].astype(str), strict=True):
        for criterion in CRITERIA:
            rows.append(_pair_row(post_id, text, criterion, by_pair.get((post_id, criterion), [])))
    table = pd.DataFrame(rows, columns=list(MODEL_INPUT_COLUMNS))
    table["split"] = table["post_id"].map(splits)
    for column in ("label", "evidence_start", "evidence_end"):
        table[column] = table[column].astype("int64")
    return table


def _pair_row(
    post_id: str, text: str, criterion: str, annotations: list[dict[str, Any]]
) -> dict[str, Any]:
    positives = [a for a in annotations if int(a["status"]) == 1]
    spans = sorted(
        {(int(a["evidence_start"]), int(a["evidence_end"])) for a in positives} - {(-1, -1)}
    )
    if positives:
        status = "positive"
        aligned = [a for a in positives if int(a["evidence_start"]) >= 0]
        primary = min(aligned, key=lambda a: int(a["evidence_start"])) if aligned else None
        alignment = str(primary["alignment"]) if primary else "unaligned"
    else:
        status = "negative" if annotations else "absent"
        primary, alignment = None, "none"
    start = int(primary["evidence_start"]) if primary else -1
    end = int(primary["evidence_end"]) if primary else -1
    return {
        "post_id": post_id,
        "text": text,
        "criterion": criterion,
        "label": int(bool(positives)),
        "status": status,
        "evidence_start": start,
        "evidence_end": end,
        "evidence_text": text[start:end] if primary else "",
        "evidence_spans": [list(span) for span in spans],
        "alignment": alignment,
        "split": None,
    }


def synthetic_model_input(synthetic: SyntheticConfig, splits: SplitConfig) -> pd.DataFrame:
    """The data_ingest steps on the synthetic corpus, in memory: for benchmarks and scripts."""
    posts, annotations = generate_synthetic(synthetic)
    aligned, _ = align_annotations(posts, annotations, AlignmentConfig())
    return build_model_input(posts, aligned, assign_splits(posts, aligned, splits))
