"""Commit a new set of records, then remove what the old manifest named and the new one does not.

The order is the whole point: the manifest is replaced first (atomically), objects are deleted
after, so a crash in between only leaves orphans that the start-up sweep removes. Every byte goes
through the trial's :class:`~.storage.Storage`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from mental_health_hpo.checkpointing._errors import CheckpointError
from mental_health_hpo.checkpointing._manifest import (
    CheckpointRecord,
    Manifest,
    read_manifest,
    write_manifest,
)
from mental_health_hpo.checkpointing._pressure import human_bytes, insufficient_space_error
from mental_health_hpo.checkpointing._retention import (
    RetentionPolicy,
    apply_plan,
    plan_emergency,
    plan_retention,
)
from mental_health_hpo.workspace.layout import RECORD_NAME
from mental_health_hpo.workspace.storage import Storage, TrialTakenOverError, as_storage

logger = logging.getLogger(__name__)


def write_record_copy(storage: Storage, record: CheckpointRecord) -> None:
    """The checkpoint's own copy of its record, durable before the manifest names it."""
    payload = json.dumps(record.to_json(), indent=1).encode()
    storage.put(f"{record.id}/{RECORD_NAME}", payload)


def commit_records(
    location: Storage | str | Path, manifest: Manifest, records: Sequence[CheckpointRecord]
) -> int:
    """Write ``manifest`` holding ``records``, then delete dropped objects; returns bytes freed."""
    storage = as_storage(location)
    old = {r.id: r for r in manifest.checkpoints}
    manifest.checkpoints = list(records)
    write_manifest(storage, manifest)
    new = {r.id: r for r in records}
    freed = 0
    for ckpt_id, record in old.items():
        if ckpt_id not in new:
            freed += record.size
            storage.delete_prefix(ckpt_id)
            continue
        for name, entry in record.files.items():
            if name not in new[ckpt_id].files:
                freed += entry.size
                storage.delete(entry.path)
    return freed


def commit_new_checkpoint(
    storage: Storage, manifest: Manifest, record: CheckpointRecord, policy: RetentionPolicy
) -> None:
    """Commit a freshly written checkpoint with the retention plan that includes it.

    The new record counts as existing, so a plan that drops it at once (neither best nor newest
    by step) also removes its folder. Its own copy of the record is written first, so an
    unreadable manifest can be rebuilt from the folders.
    """
    write_record_copy(storage, record)
    records = [*manifest.checkpoints, record]
    plan = plan_retention(records, policy, manifest.metric_name)
    if plan.over_budget:
        logger.warning(
            "checkpoints of %s use %s, above max_total_size %s; only protected checkpoints remain",
            storage.describe(""),
            human_bytes(plan.bytes_after),
            human_bytes(policy.max_total_size),
        )
    manifest.checkpoints = records
    commit_records(storage, manifest, apply_plan(records, plan))


def discard_uncommitted(storage: Storage, ckpt: str) -> None:
    """After a failed save: remove its folder unless the manifest already committed it."""
    try:
        manifest = read_manifest(storage)
    except CheckpointError:
        return
    if manifest is None or manifest.record(ckpt) is None:
        storage.delete_prefix(ckpt)


def prune_unprotected(storage: Storage, manifest: Manifest) -> int:
    """Under disk pressure: drop every checkpoint of a trial but its newest full one and its best;
    returns the bytes freed."""
    plan = plan_emergency(list(manifest.checkpoints), manifest.metric_name)
    if not plan.changes_anything:
        return 0
    return commit_records(storage, manifest, apply_plan(manifest.checkpoints, plan))


@contextlib.contextmanager
def failing_save(
    storage: Storage,
    ckpt: str,
    needed: int,
    scan: Path | None,
    discard: Callable[[], None] | None = None,
    claimed: Callable[[], bool] = lambda: False,
) -> Iterator[None]:
    """On any error: drop what this save left uncommitted (``discard`` its staged objects); a
    full disk says how to make room (``scan``: the local folder whose checkpoints it lists).

    A save refused because the trial was taken over removes its ``<ckpt>/`` folder only when
    it ``claimed`` it (committed a file there first): otherwise the folder is the other worker's,
    perhaps durable and about to be named by its manifest.
    """
    try:
        yield
    except BaseException as exc:
        if discard is not None:
            discard()
        if not isinstance(exc, TrialTakenOverError) or claimed():
            discard_uncommitted(storage, ckpt)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC and scan is not None:
            root = storage.local_path("") or scan
            raise insufficient_space_error(root, needed, [scan]) from exc
        raise
