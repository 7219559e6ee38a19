"""Publish committed checkpoints into a hand-off folder: hard links, one atomic swap.

Why: the evaluate pipeline runs in a new session and must find the study's best checkpoint at a
fixed catalog path, whatever the study is called and whatever study-level retention later does
to the trial folder. Hard links cost no copy on the same filesystem (a copy is made elsewhere);
the new folder is built beside the target and swapped in by renames, so a crash leaves the old
hand-off or the new one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mental_health_hpo.checkpointing import CheckpointRef
from mental_health_hpo.checkpointing._errors import CheckpointError
from mental_health_hpo.checkpointing._manifest import read_manifest, write_manifest
from mental_health_hpo.crash_points import crash_point
from mental_health_hpo.ops.locations import Location
from mental_health_hpo.workspace.atomic import atomic_write_bytes, fsync_dir
from mental_health_hpo.workspace.hashing import sha256_file
from mental_health_hpo.workspace.layout import (
    CHECKPOINTS_DIRNAME,
    PUBLISHED_RECORD_NAME,
    TRIAL_RECORD_NAME,
    PublishedLayout,
    StudyLayout,
    TrialLayout,
)
from mental_health_hpo.workspace.storage import BucketFolder, Storage, storage_at

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


def _copy_across(origin: Storage, key: str, target: Storage) -> None:
    """``origin``'s ``key`` to ``target``'s same key: a server-side copy between two prefixes
    of one object store, else streamed in chunks (never whole in memory)."""
    if isinstance(origin, BucketFolder) and isinstance(target, BucketFolder):
        origin.size(key)  # FileNotFoundError when absent
        target.fs.copy(origin._remote(key), target._remote(key))
        return
    staged = target.stage(key)
    try:
        with origin.open(key) as stream:
            while chunk := stream.read(16 * 2**20):
                staged.write(chunk)
        staged.commit()
    except BaseException:
        staged.discard()
        raise


def publish_to_storage(
    source: Location,
    checkpoint_ids: Sequence[str],
    target: Location,
    extra_files: Mapping[str, bytes] | None = None,
) -> Location:
    """Make ``target/checkpoints`` hold exactly ``checkpoint_ids`` of the trial checkpoints
    at ``source``: the twin of :func:`publish_checkpoints` where a bucket is involved.

    A bucket has no rename to swap a folder in, so a publication commits the way a checkpoint
    does: the data objects first (server-side copies: no byte passes through this host, whose
    disk holds none of them), then the manifest naming them, then ``extra_files`` (the
    record); last, the objects of the previous publication that the new manifest does not
    name are deleted. Each copy's size is checked against the manifest here; a load verifies
    its SHA-256, so a reader racing a republication falls back past what it cannot verify.
    """
    origin = storage_at(source)
    published = storage_at(target / CHECKPOINTS_DIRNAME)
    manifest = read_manifest(origin)
    if manifest is None:
        raise CheckpointError(f"nothing committed in {origin.describe('')}")
    wanted = [r for r in manifest.checkpoints if r.id in set(checkpoint_ids)]
    missing = sorted(set(checkpoint_ids) - {r.id for r in wanted})
    if missing or not wanted:
        raise CheckpointError(
            f"checkpoint(s) {missing or list(checkpoint_ids)} not in {origin.describe('')}"
        )
    for record in wanted:
        for entry in record.files.values():
            _copy_across(origin, entry.path, published)
            if published.size(entry.path) != entry.size:
                raise CheckpointError(
                    f"{published.describe(entry.path)} differs in size from its manifest "
                    "entry: not published"
                )
    manifest.checkpoints = wanted
    write_manifest(published, manifest)
    folder = storage_at(target)
    for name, data in (extra_files or {}).items():
        folder.put(name, data)
    kept = {r.id for r in wanted}
    for child in published.list(""):
        if child.is_prefix and child.name not in kept:
            published.delete_prefix(child.name)
    return target / CHECKPOINTS_DIRNAME


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


# The record that travels with a published best checkpoint: which trial, how to rebuild it.
#
# Why: evaluate runs in its own session and must not re-derive the study's best trial from
# ``experiments/`` behind the catalog's back. hpo's publish writes this record beside the published
# checkpoints; loading ``best_checkpoint`` reads it (a small JSON file) and nothing else, so
# evaluate gets the trial, its model config, the metric and the co-best ids through the catalog,
# and verifies and loads each checkpoint's weights once, when it evaluates it.
RECORD_NAME = PUBLISHED_RECORD_NAME


@dataclass(frozen=True)
class PublishedRecord:
    """The published best trial: identity, model config, metric and co-best checkpoint ids."""

    study_id: str
    study_dir: str
    trial_id: str
    trial_number: int
    trial_dir: str
    metric_name: str
    value: float
    checkpoint_ids: list[str]
    trial_record: dict[str, Any] = field(default_factory=dict)  # the trial's trial.json

    @property
    def model_config(self) -> dict[str, Any]:
        """``trial.json["config"]["model"]``: what rebuilds the network."""
        return dict(self.trial_record.get("config", {}).get("model", {}) or {})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def to_bytes(self) -> bytes:
        """The ``published.json`` payload."""
        return json.dumps(self.to_json(), indent=1, default=str).encode()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PublishedRecord:
        return cls(
            study_id=str(data["study_id"]),
            study_dir=str(data["study_dir"]),
            trial_id=str(data["trial_id"]),
            trial_number=int(data["trial_number"]),
            trial_dir=str(data["trial_dir"]),
            metric_name=str(data["metric_name"]),
            value=float(data["value"]),
            checkpoint_ids=[str(i) for i in data["checkpoint_ids"]],
            trial_record=dict(data.get("trial_record") or {}),
        )


def read_trial_record(trial_dir: Location) -> dict[str, Any]:
    """A trial's ``trial.json`` (in a folder or a bucket); empty when missing or unreadable."""
    try:
        return dict(json.loads(storage_at(trial_dir).read(TRIAL_RECORD_NAME).decode("utf-8")))
    except (OSError, json.JSONDecodeError):
        return {}


def _number(trial_dir: Location, record: Mapping[str, Any]) -> int:
    if "number" in record:
        return int(record["number"])
    number = TrialLayout(trial_dir).number
    return -1 if number is None else number


def record_of(trial_dir: Location, refs: list[CheckpointRef]) -> PublishedRecord:
    """The record of ``refs`` (best and co-best checkpoints of one trial) and their trial."""
    trial = TrialLayout(trial_dir)
    trial_record = read_trial_record(trial_dir)
    study = StudyLayout(trial_dir.parent)
    return PublishedRecord(
        study_id=study.study_id,
        study_dir=str(study.path),
        trial_id=trial.trial_id,
        trial_number=_number(trial_dir, trial_record),
        trial_dir=str(trial_dir),
        metric_name=refs[0].metric_name,
        value=refs[0].value,
        checkpoint_ids=[r.record.id for r in refs],
        trial_record=trial_record,
    )


def read_record(folder: Location) -> PublishedRecord | None:
    """The record of a published folder; None when there is none (not a published folder)."""
    try:
        data = json.loads(storage_at(folder).read(PUBLISHED_RECORD_NAME).decode("utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    return PublishedRecord.from_json(data)


def best_of_folder(path: Location, metric_name: str | None) -> PublishedRecord | None:
    """The record of the best trial under a study or trial folder (``evaluate.study_name``).

    :meth:`CheckpointRef.best` (the one rule) decides; of co-best trials, the first folder.
    """
    refs = CheckpointRef.best(path, metric_name)
    if not refs:
        return None
    best_trial = refs[0].trial_dir
    return record_of(best_trial, [r for r in refs if r.trial_dir == best_trial])
