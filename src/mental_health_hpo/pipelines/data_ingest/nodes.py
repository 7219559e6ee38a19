"""Thin nodes over :mod:`mental_health_hpo.data`; every output is a persisted catalog entry."""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path
from typing import Any

import pandas as pd

from mental_health_hpo.constants import SPLITS
from mental_health_hpo.data import (
    AlignmentConfig,
    DataConfigError,
    SourceConfig,
    SplitConfig,
    align_annotations,
    assign_splits,
    build_model_input,
    check_disjoint_splits,
    dataset_fingerprint,
    load_source,
)
from mental_health_hpo.pipelines.data_ingest.freshness import PARAMETERS_KEY, normalized

logger = logging.getLogger(__name__)


def _config(cls: type, params: dict[str, Any] | None, group: str) -> Any:
    params = dict(params or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise DataConfigError(
            f"data_ingest.{group}: unknown key(s) {unknown}; known: {sorted(known)}"
        )
    return cls(**params)


def load_raw(source: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Read and validate the source; nothing is written when the input is bad."""
    raw = load_source(SourceConfig.from_params(source), project_root=Path.cwd())
    origin = dict(raw.origin)
    origin["source_splits"] = raw.post_splits
    logger.info(
        "Loaded %d posts and %d annotations from %s",
        len(raw.posts),
        len(raw.annotations),
        origin["source"],
    )
    return raw.posts, raw.annotations, origin


def align_evidence(
    posts: pd.DataFrame, annotations: pd.DataFrame, alignment: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Locate each evidence sentence in its post and report how each was found."""
    config = _config(AlignmentConfig, alignment, "alignment")
    aligned, counts = align_annotations(posts, annotations, config)
    positives = aligned["status"] == 1
    report = {
        "counts": counts,
        "positive_counts": aligned.loc[positives, "alignment"].value_counts().to_dict(),
        "total": len(aligned),
        "fuzzy_threshold": config.fuzzy_threshold,
    }
    logger.info("Evidence alignment: %s", counts)
    return aligned, report


def split_and_build(
    posts: pd.DataFrame,
    aligned: pd.DataFrame,
    origin: dict[str, Any],
    data_ingest: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Split by post (or keep the source's splits), check for leaks, expand to pair rows.

    The fingerprint also records every ``data_ingest`` parameter, so that a later
    ``kedro run --only-missing-outputs`` can tell data built from other parameters
    (``pipelines.data_ingest.freshness``) and ingest again.
    """
    splits = (data_ingest or {}).get("splits")
    source_splits = origin.get("source_splits")
    if source_splits:
        assignment = pd.Series(source_splits, name="split").rename_axis("post_id")
    else:
        assignment = assign_splits(posts, aligned, _config(SplitConfig, splits, "splits"))
    check_disjoint_splits(posts, assignment)
    table = build_model_input(posts, aligned, assignment)
    counts = {name: int((assignment == name).sum()) for name in SPLITS}
    origin_without_splits = {k: v for k, v in origin.items() if k != "source_splits"}
    fingerprint = dataset_fingerprint(
        origin_without_splits, posts, aligned.drop(columns=["alignment_score"]), counts
    )
    # After the digest: the same data from other parameters keeps its fingerprint id.
    fingerprint[PARAMETERS_KEY] = normalized(data_ingest)
    logger.info("Split posts %s; dataset fingerprint %s", counts, fingerprint["fingerprint"])
    parts = [table[table["split"] == name].reset_index(drop=True) for name in SPLITS]
    return parts[0], parts[1], parts[2], fingerprint
