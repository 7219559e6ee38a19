"""Commit a new set of records, then remove what the old manifest named and the new one does not.

The order is the whole point: the manifest is replaced first (atomically), files are deleted after,
so a crash in between only leaves orphans that the start-up sweep removes.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Sequence
from pathlib import Path

from mental_health_hpo.checkpointing.atomic import fsync_dir, remove_durably
from mental_health_hpo.checkpointing.manifest import CheckpointRecord, Manifest, write_manifest


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
