"""Is the ingested data still what the current ``data_ingest`` parameters would produce?

``split_and_build`` records the parameters it ran with in ``dataset_fingerprint``; comparing
them with the parameters of the current run tells whether ``kedro run --only-missing-outputs``
may keep the data (nothing changed) or must ingest again (a changed source, alignment or split).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mental_health_hpo.mappings import flatten

#: The key of ``dataset_fingerprint`` that holds the parameters the data was built from.
PARAMETERS_KEY = "parameters"


def normalized(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Parameters as they read back from JSON (tuples become lists, keys sorted)."""
    return dict(json.loads(json.dumps(dict(params or {}), sort_keys=True, default=str)))


def changed_parameters(
    recorded: Mapping[str, Any] | None, current: Mapping[str, Any] | None
) -> list[str]:
    """Dotted keys whose value differs, ``"key: old -> new"``; empty when the data is current."""
    old = flatten(normalized(recorded))
    new = flatten(normalized(current))
    return [
        f"{key}: {old.get(key, '<unset>')!r} -> {new.get(key, '<unset>')!r}"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


def outdated_reason(
    fingerprint: Mapping[str, Any] | None, current: Mapping[str, Any] | None
) -> str | None:
    """Why the data under ``fingerprint`` is out of date for ``current``, or None if it is not."""
    if fingerprint is None:
        return None  # nothing ingested yet: Kedro sees the outputs missing by itself
    if PARAMETERS_KEY not in fingerprint:
        return "dataset_fingerprint records no data_ingest parameters (an older ingest)"
    changes = changed_parameters(fingerprint[PARAMETERS_KEY], current)
    if not changes:
        return None
    return "data_ingest parameters changed since the last ingest: " + "; ".join(changes)
