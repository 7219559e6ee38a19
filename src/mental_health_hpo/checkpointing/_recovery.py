"""Orphans: temp files left by killed writes, checkpoint folders or files no manifest names, the
quarantine of corrupt checkpoints, and trial folders that belong to no study.

The CLI over this module is ``python -m mental_health_hpo.checkpointing.cleanup``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mental_health_hpo.checkpointing._errors import CheckpointError
from mental_health_hpo.checkpointing._manifest import (
    CheckpointRecord,
    Manifest,
    MetricRecord,
    read_manifest,
    utc_now,
    write_manifest,
)
from mental_health_hpo.checkpointing._retention import RetentionPolicy, apply_plan, plan_retention
from mental_health_hpo.workspace.layout import (
    CHECKPOINTS_DIRNAME,
    MANIFEST_NAME,
    PREVIOUS_MANIFEST_NAME,
    QUARANTINE_DIRNAME,
    RECORD_NAME,
    STUDY_PREFIX,
    TRIAL_PREFIX,
    is_temp_name,
)
from mental_health_hpo.workspace.storage import LocalStorage, Storage, as_storage

logger = logging.getLogger(__name__)

_KEPT_BESIDE_MANIFEST = {MANIFEST_NAME, PREVIOUS_MANIFEST_NAME}


@dataclass(frozen=True)
class Orphan:
    """A path no manifest accounts for, why, and its size in bytes."""

    path: Path
    reason: str
    size: int


def _size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        with contextlib.suppress(OSError):
            return path.lstat().st_size
        return 0
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(dirpath) / name).lstat().st_size
    return total


_TEMP = "temp file of an interrupted write"


def _uncommitted(storage: Storage, manifest: Manifest | None) -> list[tuple[str, str, bool]]:
    """(key, why, is a prefix) of everything in one checkpoints store its manifest does not name."""
    found: list[tuple[str, str, bool]] = []
    records = {r.id: r for r in manifest.checkpoints} if manifest else {}
    for entry in storage.list():
        name = entry.name
        if name in _KEPT_BESIDE_MANIFEST:
            continue
        if is_temp_name(name):
            found.append((name, _TEMP, entry.is_prefix))
        elif name == QUARANTINE_DIRNAME:
            found.append((name, "quarantined corrupt checkpoints", True))
        elif name not in records or not entry.is_prefix:
            found.append((name, "not in the manifest", entry.is_prefix))
        else:
            named = {e.path.rsplit("/", 1)[-1] for e in records[name].files.values()}
            for child in storage.list(name):
                key = f"{name}/{child.name}"
                if is_temp_name(child.name):
                    found.append((key, _TEMP, child.is_prefix))
                elif child.name not in named | {RECORD_NAME}:
                    found.append((key, "file not in the manifest", child.is_prefix))
    return found


def uncommitted_in(directory: Path, manifest: Manifest | None) -> list[Orphan]:
    """Everything in one local checkpoints folder that its manifest does not name."""
    if not directory.is_dir():
        return []
    found = _uncommitted(LocalStorage(directory), manifest)
    return [Orphan(directory / key, why, _size(directory / key)) for key, why, _ in found]


def _checkpoint_dirs(root: Path) -> list[Path]:
    found = set()
    for dirpath, dirnames, _files in os.walk(root):
        if Path(dirpath).name == CHECKPOINTS_DIRNAME:
            found.add(Path(dirpath))
            dirnames.clear()
    return sorted(found)


def find_orphans(experiments_dir: str | Path) -> list[Orphan]:
    """All orphans under ``experiments_dir``; nothing is removed."""
    root = Path(experiments_dir)
    orphans: list[Orphan] = []
    top = [] if root.name.startswith(STUDY_PREFIX) or not root.is_dir() else sorted(root.iterdir())
    for child in top:
        if child.is_dir() and child.name.startswith(TRIAL_PREFIX):
            orphans.append(Orphan(child, "trial folder of no study", _size(child)))
    stray = {o.path for o in orphans}
    for directory in _checkpoint_dirs(root):
        if any(parent in stray for parent in directory.parents):
            continue
        try:
            manifest = read_manifest(directory)
        except CheckpointError as exc:
            logger.warning("%s: %s (its checkpoints are not touched)", directory, exc)
            continue
        orphans.extend(uncommitted_in(directory, manifest))
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            known = {o.path for o in orphans}
            if is_temp_name(name) and path not in known and not known & set(path.parents):
                orphans.append(Orphan(path, "temp file of an interrupted write", _size(path)))
    return orphans


def remove_orphans(orphans: Sequence[Orphan]) -> int:
    """Delete the given orphans durably; returns bytes freed."""
    freed = 0
    for orphan in orphans:
        LocalStorage(orphan.path.parent).delete_prefix(orphan.path.name)
        freed += orphan.size
    return freed


def sweep_temp_files(folder: Path) -> list[Orphan]:
    """Temp files of interrupted writes anywhere under one trial folder (``trial.json`` too).

    Only the process that owns the trial may call this: no one else writes in its folder, so no
    temp file there can belong to a write still in progress.
    """
    orphans = [
        Orphan(Path(dirpath) / name, _TEMP, 0)
        for dirpath, _dirs, files in os.walk(folder)
        for name in files
        if is_temp_name(name)
    ]
    remove_orphans(orphans)
    return orphans


def sweep_uncommitted(location: Storage | str | Path, manifest: Manifest | None) -> list[str]:
    """Start-up sweep of one checkpoints store (keeps the quarantine for inspection); returns
    the keys it removed. Only the trial's owner may call this (see :func:`sweep_temp_files`)."""
    storage = as_storage(location)
    found = [item for item in _uncommitted(storage, manifest) if item[0] != QUARANTINE_DIRNAME]
    for key, _why, is_prefix in found:
        if is_prefix:
            storage.delete_prefix(key)
        else:
            storage.delete(key)
    if found:
        logger.info("removed %d uncommitted leftovers in %s", len(found), storage.describe(""))
    return [key for key, _why, _prefix in found]


# Rebuild an unreadable manifest instead of throwing away the checkpoints it named.
#
# Every checkpoint folder holds ``record.json``, its own copy of the record the manifest commits
# (written before the manifest), and every manifest write keeps the one before it as
# ``manifest.prev.json``. When ``manifest.json`` cannot be parsed it is quarantined, and the
# manifest is rebuilt from the previous one plus every checkpoint folder whose record and file
# sizes check out. Hashes are verified later, on load, as always.
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
