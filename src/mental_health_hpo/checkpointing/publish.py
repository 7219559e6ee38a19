"""Publish committed checkpoints into a hand-off folder: hard links, one atomic swap.

Why: the evaluate pipeline runs in a new session and must find the study's best checkpoint at a
fixed catalog path, whatever the study is called and whatever study-level retention later does
to the trial folder. Hard links cost no copy on the same filesystem (a copy is made elsewhere);
the new folder is built beside the target and swapped in by renames, so a crash leaves the old
hand-off or the new one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from mental_health_hpo.checkpointing.atomic import fsync_dir
from mental_health_hpo.checkpointing.errors import CheckpointError
from mental_health_hpo.checkpointing.hashing import sha256_file
from mental_health_hpo.checkpointing.manifest import read_manifest, write_manifest


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem
        shutil.copy2(source, target)


def publish_checkpoints(source: Path, checkpoint_ids: Sequence[str], target: Path) -> Path:
    """Make ``target/checkpoints`` hold exactly ``checkpoint_ids`` of ``source`` (verified).

    ``source`` is a trial's ``checkpoints`` folder. Returns the published checkpoints folder.
    """
    manifest = read_manifest(source)
    if manifest is None:
        raise CheckpointError(f"nothing committed in {source}")
    wanted = [r for r in manifest.checkpoints if r.id in set(checkpoint_ids)]
    missing = sorted(set(checkpoint_ids) - {r.id for r in wanted})
    if missing or not wanted:
        raise CheckpointError(f"checkpoint(s) {missing or list(checkpoint_ids)} not in {source}")
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    published = staging / "checkpoints"
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
    fsync_dir(staging)
    previous = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(previous)
    staging.rename(target)
    fsync_dir(target.parent)
    shutil.rmtree(previous, ignore_errors=True)
    return target / "checkpoints"


def clear_published(target: Path) -> None:
    """Remove a hand-off folder (renamed away first, so no half-deleted folder is ever read)."""
    if target.exists():
        previous = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(previous)
        fsync_dir(target.parent)
        shutil.rmtree(previous, ignore_errors=True)
