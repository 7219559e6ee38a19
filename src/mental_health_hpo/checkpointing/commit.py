"""Commit a new set of records, then remove what the old manifest named and the new one does not.

The order is the whole point: the manifest is replaced first (atomically), files are deleted after,
so a crash in between only leaves orphans that the start-up sweep removes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mental_health_hpo.checkpointing.atomic import atomic_write_bytes, fsync_dir, remove_durably
from mental_health_hpo.checkpointing.disk import human_bytes, insufficient_space_error
from mental_health_hpo.checkpointing.errors import CheckpointError
from mental_health_hpo.checkpointing.layout import RECORD_NAME
from mental_health_hpo.checkpointing.manifest import (
    CheckpointRecord,
    Manifest,
    read_manifest,
    write_manifest,
)
from mental_health_hpo.checkpointing.policy import RetentionPolicy
from mental_health_hpo.checkpointing.retention import apply_plan, plan_emergency, plan_retention

if TYPE_CHECKING:  # serialize imports this module
    from mental_health_hpo.checkpointing.serialize import StagedCheckpoint

logger = logging.getLogger(__name__)


def write_record_copy(directory: Path, record: CheckpointRecord) -> None:
    """The checkpoint's own copy of its record, durable before the manifest names it."""
    payload = json.dumps(record.to_json(), indent=1).encode()
    atomic_write_bytes(directory / record.id / RECORD_NAME, payload)


def remove_tree(path: Path) -> None:
    """Delete a checkpoint folder and make the removal durable."""
    if not path.exists():
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                child.unlink()
    with contextlib.suppress(OSError):
        path.rmdir()
    fsync_dir(path.parent)


def commit_records(directory: Path, manifest: Manifest, records: Sequence[CheckpointRecord]) -> int:
    """Write ``manifest`` holding ``records``, then delete dropped files; returns bytes freed."""
    old = {r.id: r for r in manifest.checkpoints}
    manifest.checkpoints = list(records)
    write_manifest(directory, manifest)
    new = {r.id: r for r in records}
    freed = 0
    for ckpt_id, record in old.items():
        if ckpt_id not in new:
            freed += record.size
            remove_tree(directory / ckpt_id)
            continue
        for name, entry in record.files.items():
            if name not in new[ckpt_id].files:
                freed += entry.size
                remove_durably(directory / entry.path)
    return freed


def commit_new_checkpoint(
    directory: Path, manifest: Manifest, record: CheckpointRecord, policy: RetentionPolicy
) -> None:
    """Commit a freshly written checkpoint with the retention plan that includes it.

    The new record counts as existing, so a plan that drops it at once (neither best nor newest
    by step) also removes its folder. Its own copy of the record is written first, so an
    unreadable manifest can be rebuilt from the folders.
    """
    write_record_copy(directory, record)
    records = [*manifest.checkpoints, record]
    plan = plan_retention(records, policy, manifest.metric_name)
    if plan.over_budget:
        logger.warning(
            "checkpoints of %s use %s, above max_total_size %s; only protected checkpoints remain",
            directory,
            human_bytes(plan.bytes_after),
            human_bytes(policy.max_total_size),
        )
    manifest.checkpoints = records
    commit_records(directory, manifest, apply_plan(records, plan))


def discard_uncommitted(directory: Path, ckpt: str) -> None:
    """After a failed save: remove its folder unless the manifest already committed it."""
    try:
        manifest = read_manifest(directory)
    except CheckpointError:
        return
    if manifest is None or manifest.record(ckpt) is None:
        remove_tree(directory / ckpt)


def prune_unprotected(directory: Path, manifest: Manifest) -> int:
    """Under disk pressure: drop every checkpoint of a trial but its newest full one and its best;
    returns the bytes freed."""
    plan = plan_emergency(list(manifest.checkpoints), manifest.metric_name)
    if not plan.changes_anything:
        return 0
    return commit_records(directory, manifest, apply_plan(manifest.checkpoints, plan))


@contextlib.contextmanager
def failing_save(
    directory: Path, ckpt: str, needed: int, scan: Path, staged: StagedCheckpoint | None = None
) -> Iterator[None]:
    """On any error: drop what this save left uncommitted; a full disk says how to make room."""
    try:
        yield
    except BaseException as exc:
        if staged is not None:
            staged.discard()
        discard_uncommitted(directory, ckpt)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise insufficient_space_error(directory, needed, [scan]) from exc
        raise
