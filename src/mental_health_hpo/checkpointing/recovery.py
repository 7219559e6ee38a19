"""Rebuild an unreadable manifest instead of throwing away the checkpoints it named.

Every checkpoint folder holds ``record.json``, its own copy of the record the manifest commits
(written before the manifest), and every manifest write keeps the one before it as
``manifest.prev.json``. When ``manifest.json`` cannot be parsed it is quarantined, and the
manifest is rebuilt from the previous one plus every checkpoint folder whose record and file
sizes check out. Hashes are verified later, on load, as always.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

from mental_health_hpo.checkpointing.atomic import atomic_write_bytes
from mental_health_hpo.checkpointing.layout import PREVIOUS_MANIFEST_NAME, RECORD_NAME
from mental_health_hpo.checkpointing.manifest import (
    CheckpointRecord,
    Manifest,
    MetricRecord,
)

logger = logging.getLogger(__name__)


def write_record_copy(directory: Path, record: CheckpointRecord) -> None:
    """The checkpoint's own copy of its record, durable before the manifest names it."""
    payload = json.dumps(record.to_json(), indent=1).encode()
    atomic_write_bytes(directory / record.id / RECORD_NAME, payload)


def _files_present(directory: Path, record: CheckpointRecord) -> bool:
    for entry in record.files.values():
        path = directory / entry.path
        if not path.is_file() or path.stat().st_size != entry.size:
            return False
    return True


def _previous(directory: Path) -> Manifest | None:
    path = directory / PREVIOUS_MANIFEST_NAME
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
        return Manifest.from_json(json.loads(path.read_bytes()))
    return None


def _record_copy(folder: Path) -> CheckpointRecord | None:
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
        return CheckpointRecord.from_json(json.loads((folder / RECORD_NAME).read_bytes()))
    return None


def rebuild_manifest(directory: Path, empty: Manifest) -> Manifest:
    """The best manifest the folder supports; ``empty`` when nothing can be recovered."""
    manifest = _previous(directory) or empty
    records = {r.id: r for r in manifest.checkpoints if _files_present(directory, r)}
    for folder in sorted(p for p in directory.iterdir() if p.is_dir()):
        record = _record_copy(folder)
        if record is None or record.id != folder.name or record.id in records:
            continue
        if _files_present(directory, record):
            records[record.id] = record
    manifest.checkpoints = sorted(records.values(), key=lambda r: (r.step, r.epoch, r.id))
    last_step = manifest.history[-1].step if manifest.history else None
    for record in manifest.checkpoints:
        if last_step is None or record.step > last_step:
            manifest.history.append(
                MetricRecord(
                    record.epoch, record.step, record.metrics, record.created_at, record.id
                )
            )
            last_step = record.step
    if manifest.checkpoints:
        logger.warning(
            "rebuilt the manifest of %s from its previous copy and checkpoint records: %s",
            directory,
            [r.id for r in manifest.checkpoints],
        )
    return manifest
