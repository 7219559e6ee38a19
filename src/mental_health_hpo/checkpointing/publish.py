"""Publish committed checkpoints into a hand-off folder: hard links, one atomic swap.

Why: the evaluate pipeline runs in a new session and must find the study's best checkpoint at a
fixed catalog path, whatever the study is called and whatever study-level retention later does
to the trial folder. Hard links cost no copy on the same filesystem (a copy is made elsewhere);
the new folder is built beside the target and swapped in by renames, so a crash leaves the old
hand-off or the new one.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from mental_health_hpo.checkpointing.atomic import atomic_write_bytes, fsync_dir
from mental_health_hpo.checkpointing.errors import CheckpointError
from mental_health_hpo.checkpointing.hashing import sha256_file
from mental_health_hpo.checkpointing.layout import PublishedLayout
from mental_health_hpo.checkpointing.manifest import read_manifest, write_manifest
from mental_health_hpo.crash_points import crash_point

logger = logging.getLogger(__name__)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem
        shutil.copy2(source, target)


def _alive(pid: int) -> bool:
    """Another live process on this host (this process's own leftovers are not in flight)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_published(target: Path) -> None:
    """Undo what a publication killed half-way left beside ``target``.

    Killed between its two renames, a publication leaves no ``target`` at all, the old folder
    as ``.<name>.old-<pid>`` and the new one as ``.<name>.tmp-<pid>``: the old one is put back
    (a crash leaves the old hand-off or the new one, never none). Every other staging or
    previous folder of a dead process is removed. A live publisher's folders are left alone.
    """
    layout = PublishedLayout(target)
    for path, pid, previous in layout.leftovers():
        if _alive(pid):
            continue
        if previous and not target.exists():
            path.rename(target)
            fsync_dir(target.parent)
            logger.warning("restored %s, which a killed publication had moved away", target)
        else:
            shutil.rmtree(path, ignore_errors=True)
            logger.info("removed %s, left by a killed publication", path)


def publish_checkpoints(
    source: Path,
    checkpoint_ids: Sequence[str],
    target: Path,
    extra_files: Mapping[str, bytes] | None = None,
) -> Path:
    """Make ``target/checkpoints`` hold exactly ``checkpoint_ids`` of ``source`` (verified).

    ``source`` is a trial's ``checkpoints`` folder. ``extra_files`` (name -> bytes) are written
    into ``target`` with the checkpoints, inside the same swap: a reader never sees the
    checkpoints without them. Returns the published checkpoints folder.
    """
    manifest = read_manifest(source)
    if manifest is None:
        raise CheckpointError(f"nothing committed in {source}")
    wanted = [r for r in manifest.checkpoints if r.id in set(checkpoint_ids)]
    missing = sorted(set(checkpoint_ids) - {r.id for r in wanted})
    if missing or not wanted:
        raise CheckpointError(f"checkpoint(s) {missing or list(checkpoint_ids)} not in {source}")
    recover_published(target)
    layout = PublishedLayout(target)
    staging = layout.staging(os.getpid())
    shutil.rmtree(staging, ignore_errors=True)
    published = PublishedLayout(staging).checkpoints
    for record in wanted:
        (published / record.id).mkdir(parents=True)
        for entry in record.files.values():
            _link_or_copy(source / entry.path, published / entry.path)
            if sha256_file(published / entry.path) != entry.sha256:
                shutil.rmtree(staging, ignore_errors=True)
                raise CheckpointError(f"{source / entry.path} fails its SHA-256: not published")
        fsync_dir(published / record.id)
    manifest.checkpoints = wanted
    write_manifest(published, manifest)
    for name, data in (extra_files or {}).items():
        atomic_write_bytes(staging / name, data)
    fsync_dir(staging)
    previous = layout.previous(os.getpid())
    if target.exists():
        target.rename(previous)
    crash_point("publish_swap")
    staging.rename(target)
    fsync_dir(target.parent)
    shutil.rmtree(previous, ignore_errors=True)
    return layout.checkpoints


def clear_published(target: Path) -> None:
    """Remove a hand-off folder (renamed away first, so no half-deleted folder is ever read)."""
    recover_published(target)
    if target.exists():
        # Renamed as staging, not as previous: a kill before the removal must not restore it.
        trash = PublishedLayout(target).staging(os.getpid())
        shutil.rmtree(trash, ignore_errors=True)
        target.rename(trash)
        fsync_dir(target.parent)
        shutil.rmtree(trash, ignore_errors=True)
