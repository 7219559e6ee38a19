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

from mental_health_hpo.checkpointing.errors import CheckpointError
from mental_health_hpo.checkpointing.layout import (
    MANIFEST_NAME,
    PREVIOUS_MANIFEST_NAME,
    QUARANTINE_DIRNAME,
    RECORD_NAME,
)
from mental_health_hpo.checkpointing.manifest import (
    CheckpointRecord,
    Manifest,
    MetricRecord,
    read_manifest,
    utc_now,
    write_manifest,
)
from mental_health_hpo.checkpointing.policy import RetentionPolicy
from mental_health_hpo.checkpointing.retention import apply_plan, plan_retention
from mental_health_hpo.checkpointing.storage import Storage

logger = logging.getLogger(__name__)


def _files_present(storage: Storage, record: CheckpointRecord) -> bool:
    for entry in record.files.values():
        try:
            if storage.size(entry.path) != entry.size:
                return False
        except (FileNotFoundError, IsADirectoryError):
            return False
    return True


def _previous(storage: Storage) -> Manifest | None:
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
        return Manifest.from_json(json.loads(storage.read(PREVIOUS_MANIFEST_NAME)))
    return None


def _record_copy(storage: Storage, ckpt: str) -> CheckpointRecord | None:
    with contextlib.suppress(
        FileNotFoundError, NotADirectoryError, ValueError, KeyError, TypeError
    ):
        return CheckpointRecord.from_json(json.loads(storage.read(f"{ckpt}/{RECORD_NAME}")))
    return None


def rebuild_manifest(storage: Storage, empty: Manifest) -> Manifest:
    """The best manifest the folder supports; ``empty`` when nothing can be recovered."""
    manifest = _previous(storage) or empty
    records = {r.id: r for r in manifest.checkpoints if _files_present(storage, r)}
    for entry in storage.list():
        if not entry.is_prefix:
            continue
        record = _record_copy(storage, entry.name)
        if record is None or record.id != entry.name or record.id in records:
            continue
        if _files_present(storage, record):
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
            storage.describe(""),
            [r.id for r in manifest.checkpoints],
        )
    return manifest


def _stamp() -> str:
    return utc_now().replace(":", "")


def read_or_rebuild(storage: Storage, empty: Manifest, policy: RetentionPolicy) -> Manifest:
    """The committed manifest, or, when it cannot be parsed, a rebuilt one (committed at once);
    the unreadable object is kept in the quarantine for inspection."""
    try:
        return read_manifest(storage) or empty
    except CheckpointError as exc:
        moved = f"{QUARANTINE_DIRNAME}/manifest-{_stamp()}.json"
        storage.move(MANIFEST_NAME, moved)
        logger.warning("%s; moved it to %s", exc, storage.describe(moved))
        manifest = rebuild_manifest(storage, empty)
        plan = plan_retention(manifest.checkpoints, policy, empty.metric_name)
        manifest.checkpoints = apply_plan(manifest.checkpoints, plan)
        write_manifest(storage, manifest)
        return manifest


def quarantine_record(
    storage: Storage, manifest: Manifest, record: CheckpointRecord, policy: RetentionPolicy
) -> None:
    """Drop a corrupt record so it no longer counts as newest or best; keep its files aside.

    Its journal entries stay: they were published, and an epoch trained again must not publish
    the same step twice.
    """
    remaining = [r for r in manifest.checkpoints if r.id != record.id]
    plan = plan_retention(remaining, policy, manifest.metric_name)
    manifest.checkpoints = apply_plan(remaining, plan)
    write_manifest(storage, manifest)
    if storage.exists(record.id):
        storage.move(record.id, f"{QUARANTINE_DIRNAME}/{record.id}-{_stamp()}")
