"""The gold of a ``model_input`` table as the model sees it: one row per (post, criterion).

Separate from tokenization because the baselines read it too (``evaluation.baselines``): they
are trained and scored on exactly the model's targets without tokenizing anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mental_health_hpo.constants import CRITERIA
from mental_health_hpo.data.alignment import sentences_covered, split_sentences

#: The data-contract columns the features depend on (docs/architecture.md).
REQUIRED_COLUMNS = ("post_id", "text", "criterion", "label", "evidence_start", "evidence_end")


def gold_evidence_table(
    table: pd.DataFrame,
) -> tuple[pd.DataFrame, dict[str, str], dict[str, list[tuple[int, int]]]]:
    """The gold of a ``model_input`` table as the model sees it: (pairs, texts, sentence spans).

    ``pairs`` has one row per (post, criterion) with ``gold_spans`` and ``gold_sentences``;
    baselines use it so they are trained and scored on exactly the model's targets.
    """
    texts = dict(zip(table["post_id"].astype(str), table["text"].astype(str), strict=True))
    sentence_spans = {pid: split_sentences(text) for pid, text in texts.items()}
    return _pairs_table(table, sentence_spans), texts, sentence_spans


def gold_sentence_sets(pairs: pd.DataFrame) -> dict[tuple[str, str], set[int] | None]:
    """(post, criterion) -> gold evidence sentence ids; None for an unaligned positive."""
    gold: dict[tuple[str, str], set[int] | None] = {}
    for row in pairs.itertuples(index=False):
        unknown = int(row.label) == 1 and not row.gold_sentences
        gold[(row.post_id, row.criterion)] = None if unknown else set(row.gold_sentences)
    return gold


def _pairs_table(
    table: pd.DataFrame, sentence_spans: dict[str, list[tuple[int, int]]]
) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"model_input table lacks columns {missing}")
    unknown = sorted(set(table["criterion"]) - set(CRITERIA))
    if unknown:
        raise ValueError(f"criterion: unknown values {unknown}")
    pairs = table.reset_index(drop=True)
    pairs = pairs.assign(
        post_id=pairs["post_id"].astype(str),
        label=pairs["label"].astype(int),
        evidence_start=pairs["evidence_start"].astype(int),
        evidence_end=pairs["evidence_end"].astype(int),
    )
    if "alignment" not in pairs.columns:
        pairs["alignment"] = np.where(pairs["label"] == 1, "exact", "none")
    pairs["gold_spans"] = [_gold_spans(row) for row in pairs.itertuples(index=False)]
    pairs["gold_sentences"] = [
        sentences_covered(sentence_spans[post_id], spans)
        for post_id, spans in zip(pairs["post_id"], pairs["gold_spans"], strict=True)
    ]
    columns = ["post_id", "criterion", "label", "alignment", "evidence_start", "evidence_end"]
    return pairs[[*columns, "gold_spans", "gold_sentences"]]


def _gold_spans(row: Any) -> list[list[int]]:
    spans = getattr(row, "evidence_spans", None)
    if spans is not None and len(spans) > 0:
        return [[int(s), int(e)] for s, e in spans if 0 <= int(s) < int(e)]
    if int(row.evidence_start) >= 0 and int(row.evidence_end) > int(row.evidence_start):
        return [[int(row.evidence_start), int(row.evidence_end)]]
    return []
