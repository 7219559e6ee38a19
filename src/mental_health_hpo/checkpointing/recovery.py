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

from mental_health_hpo.checkpointing.atomic import fsync_dir, make_dir_durable
from mental_health_hpo.checkpointing.errors import CheckpointError
from mental_health_hpo.checkpointing.layout import (
    PREVIOUS_MANIFEST_NAME,
    QUARANTINE_DIRNAME,
    RECORD_NAME,
)
from mental_health_hpo.checkpointing.manifest import (
    CheckpointRecord,
    Manifest,
    MetricRecord,
    manifest_path,
    read_manifest,
    utc_now,
    write_manifest,
)
from mental_health_hpo.checkpointing.policy import RetentionPolicy
from mental_health_hpo.checkpointing.retention import apply_plan, plan_retention

logger = logging.getLogger(__name__)


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


def read_or_rebuild(directory: Path, empty: Manifest, policy: RetentionPolicy) -> Manifest:
    """The committed manifest, or, when it cannot be parsed, a rebuilt one (committed at once);
    the unreadable file is kept in the quarantine for inspection."""
    try:
        return read_manifest(directory) or empty
    except CheckpointError as exc:
        target = directory / QUARANTINE_DIRNAME
        make_dir_durable(target)
        moved = target / f"manifest-{utc_now().replace(':', '')}.json"
        manifest_path(directory).replace(moved)
        fsync_dir(directory)
        logger.warning("%s; moved it to %s", exc, moved)
        manifest = rebuild_manifest(directory, empty)
        plan = plan_retention(manifest.checkpoints, policy, empty.metric_name)
        manifest.checkpoints = apply_plan(manifest.checkpoints, plan)
        write_manifest(directory, manifest)
        return manifest


def quarantine_record(
    directory: Path, manifest: Manifest, record: CheckpointRecord, policy: RetentionPolicy
) -> None:
    """Drop a corrupt record so it no longer counts as newest or best; keep its files aside.

    Its journal entries stay: they were published, and an epoch trained again must not publish
    the same step twice.
    """
    target = directory / QUARANTINE_DIRNAME
    make_dir_durable(target)
    remaining = [r for r in manifest.checkpoints if r.id != record.id]
    plan = plan_retention(remaining, policy, manifest.metric_name)
    manifest.checkpoints = apply_plan(remaining, plan)
    write_manifest(directory, manifest)
    source = directory / record.id
    if source.exists():
        source.replace(target / f"{record.id}-{utc_now().replace(':', '')}")
        fsync_dir(directory)
        fsync_dir(target)
