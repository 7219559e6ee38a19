"""Dataset fingerprint: enough to tell two runs apart by their data, logged with every trial."""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd

from mental_health_hpo.mappings import flatten


def table_sha256(table: pd.DataFrame) -> str:
    """SHA-256 of a table's CSV serialization: stable across runs and machines."""
    return hashlib.sha256(table.to_csv(index=False).encode("utf-8")).hexdigest()


def dataset_fingerprint(
    origin: dict[str, Any],
    posts: pd.DataFrame,
    annotations: pd.DataFrame,
    split_counts: dict[str, int],
) -> dict[str, Any]:
    """Source, id, revision (requested and resolved) or file hashes, and row counts.

    ``fingerprint`` is one short hash over all of it, for MLflow tags and report names.
    """
    content = {
        "posts_sha256": table_sha256(posts),
        "annotations_sha256": table_sha256(annotations),
    }
    rows = {"posts": len(posts), "annotations": len(annotations), **split_counts}
    summary = {**origin, **content, "rows": rows}
    digest = hashlib.sha256(
        repr(sorted((k, str(v)) for k, v in flatten(summary).items())).encode()
    ).hexdigest()
    return {**summary, "fingerprint": digest[:16]}
