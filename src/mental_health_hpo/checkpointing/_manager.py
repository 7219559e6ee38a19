"""CheckpointManager: decide what to save, hand it to a writer, commit the manifest, then prune.

The trainer calls :meth:`CheckpointManager.save` every epoch. The jobs are split: the writer
(:mod:`.writers`) decides when bytes are written and what must be copied first, the serializer
(:mod:`.serialize`) streams and hashes them, retention (:mod:`.retention`) plans what stays, the
disk guard (:mod:`.pressure`) makes room, and the manifest commits. Everything the manager
decides is derived from the manifest in storage, so a restarted process continues where the last
commit left it. It only ever touches its own trial's checkpoints, and only through its
:class:`~.storage.Storage` (a local folder by default).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from mental_health_hpo.checkpointing import _commit as commit
from mental_health_hpo.checkpointing import _pressure as pressure
from mental_health_hpo.checkpointing import _protocol as protocol
from mental_health_hpo.checkpointing import _serialize as serialize
from mental_health_hpo.checkpointing import _writers as writers
from mental_health_hpo.checkpointing._errors import CheckpointError
from mental_health_hpo.checkpointing._manifest import (
    FLAG_BEST,
    KIND_FULL,
    KIND_WEIGHTS,
    CheckpointRecord,
    Manifest,
    MetricRecord,
    utc_now,
)
from mental_health_hpo.checkpointing._options import CheckpointOptions
from mental_health_hpo.checkpointing._pressure import (
    DiskGuard,
    DiskWatch,
    UnwatchedDisk,
    tensor_bytes,
)
from mental_health_hpo.checkpointing._protocol import ContextManaged, SaveResult
from mental_health_hpo.checkpointing._recovery import (
    quarantine_record,
    read_or_rebuild,
    sweep_temp_files,
    sweep_uncommitted,
)
from mental_health_hpo.checkpointing._retention import OVERHEAD_BYTES, RetentionPolicy
from mental_health_hpo.checkpointing._verify import LoadedCheckpoint, load_newest_full, load_record
from mental_health_hpo.checkpointing._writers import CheckpointWriter, SnapshotPool, make_writer
from mental_health_hpo.workspace.layout import MANIFEST_NAME, checkpoint_id, study_of
from mental_health_hpo.workspace.storage import LocalStorage, Storage, TrialTakenOverError

logger = logging.getLogger(__name__)


# Reading what one trial has committed: its manifest, loads, and the best checkpoints.
class CommittedCheckpoints:
    """Queries over a checkpoints folder's committed manifest; corrupt files are quarantined."""

    directory: Path
    storage: Storage
    options: CheckpointOptions
    policy: RetentionPolicy
    architecture: dict[str, Any] | None
    _commit_lock: threading.Lock

    def flush(self) -> None:
        return None

    def _new_manifest(self) -> Manifest:
        return Manifest(
            metric_name=self.options.metric_name,
            code_version=self.options.code_version,
            config_hash=self.options.config_hash,
            architecture=self.architecture,
        )

    def _manifest(self) -> Manifest:
        """The committed manifest; an unreadable one is set aside and rebuilt, never ignored."""
        return read_or_rebuild(self.storage, self._new_manifest(), self.policy)

    def load_latest(self) -> LoadedCheckpoint | None:
        """The newest valid full checkpoint; corrupt ones are quarantined with a warning."""
        self.flush()
        records = self._manifest().checkpoints
        return load_newest_full(self.storage, records, self.architecture, self._quarantine)

    def _quarantine(self, record: CheckpointRecord) -> None:
        with self._commit_lock:
            quarantine_record(self.storage, self._manifest(), record, self.policy)

    def load(self, checkpoint_id: str) -> LoadedCheckpoint:
        """Load a named checkpoint; raises :class:`CheckpointError` saying why it cannot."""
        self.flush()
        manifest = self._manifest()
        record = manifest.record(checkpoint_id)
        if record is None:
            known = [r.id for r in manifest.checkpoints]
            raise CheckpointError(
                f"checkpoint {checkpoint_id!r} is not in {self.storage.describe(MANIFEST_NAME)} "
                f"(committed: {known or 'none'})"
            )
        try:
            return load_record(self.storage, record, self.architecture, record.is_full)
        except CheckpointError as exc:
            raise type(exc)(f"cannot load checkpoint {checkpoint_id!r}: {exc}") from exc

    def records(self) -> list[CheckpointRecord]:
        """Committed checkpoint records, oldest first."""
        return sorted(self._manifest().checkpoints, key=lambda r: (r.step, r.epoch))

    def best(self) -> list[CheckpointRecord]:
        """The best checkpoint and its co-best ties."""
        return [r for r in self.records() if FLAG_BEST in r.flags]

    def history(self) -> list[MetricRecord]:
        """Every committed epoch's metrics, in order (the metrics journal)."""
        return list(self._manifest().history)

    def last_committed_step(self) -> int | None:
        """Step of the last committed journal entry, None before the first commit."""
        history = self.history()
        return history[-1].step if history else None


class CheckpointManager(CommittedCheckpoints, ContextManaged):
    """Atomic, verified, retention-managed checkpoints of one trial.

    Use as a context manager (or call :meth:`close`): a background write is flushed on exit and
    on errors, and a failed background save is re-raised, never dropped.

    ``location`` is the trial's checkpoints folder, or a :class:`~.storage.Storage` holding it
    (an object store: then there is no local disk to watch and no temp files to sweep; the
    study, when there is one, is known only for a local folder).

    ``still_owner`` (the worker's lease check, when a study runs the trial) is asked before a
    save writes its files, before it makes them durable and before each manifest commit: a
    worker that stalled past its lease learns it there and stops, before it writes anything
    another worker could meet. The storage's fence catches a stall right after a check.
    """

    def __init__(
        self,
        location: str | Path | Storage,
        options: CheckpointOptions,
        *,
        on_commit: Callable[[MetricRecord], None] | None = None,
        snapshot_pool: SnapshotPool | None = None,
        disk: DiskGuard | None = None,
        still_owner: Callable[[], bool] | None = None,
    ) -> None:
        self.still_owner = still_owner
        self.storage: Storage = (
            LocalStorage(location) if isinstance(location, str | Path) else location
        )
        local = self.storage.local_path("")
        self.directory = local if local is not None else Path(self.storage.describe(""))
        self.options = options
        self.metric_name = options.metric_name
        self.architecture = dict(options.architecture) if options.architecture else None
        self.config_hash = options.config_hash
        self.on_commit = on_commit
        self.study = study_of(local) if local is not None else None
        emergency = pressure.in_emergency(self.study)
        self.policy = options.policy.as_emergency() if emergency else options.policy
        if emergency:
            logger.warning("study %s is under disk pressure: emergency retention", self.study)
        threshold = self.policy.disk_space_threshold_percent
        watch = DiskWatch(self.directory, threshold, self.study)
        watched = options.watch_disk and local is not None
        self._disk: DiskGuard = disk or (watch if watched else UnwatchedDisk())
        self._pool = snapshot_pool
        self._writer: CheckpointWriter | None = None
        self._commit_lock = threading.Lock()
        self._last_saved_epoch: int | None = None
        self._closed = False
        if local is not None:  # temp files of killed writes, the trial's own (trial.json) too
            sweep_temp_files(local.parent if self.study else local)
        sweep_uncommitted(self.storage, self._manifest())
        atexit.register(self._atexit_flush)

    def flush(self) -> None:
        """Wait for the save in flight; re-raise its error."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush and stop the writer; idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            atexit.unregister(self._atexit_flush)
        if self._writer is not None:
            self._writer.close()

    def _atexit_flush(self) -> None:
        try:
            self.close()
        except Exception:
            logger.exception("background checkpoint save failed at interpreter exit")

    def _writer_for(self, weights: Mapping[str, torch.Tensor]) -> CheckpointWriter:
        if self._writer is None:  # chosen at the first save, when the state's device is known
            on_device = writers.state_on_accelerator(dict(weights))
            self._writer = make_writer(self.options.writer, on_device, self._pool)
        return self._writer

    def _notify(self, entry: MetricRecord | None) -> None:
        if entry is not None and self.on_commit is not None:
            self.on_commit(entry)

    def _due(self, epoch: int) -> bool:
        last = self._last_saved_epoch
        if last is None:
            last = max((r.epoch for r in self._manifest().checkpoints), default=None)
        return self.policy.epoch_due(epoch, last)

    # ---------------------------------------------------------------- save
    def save(
        self,
        *,
        epoch: int,
        step: int,
        metrics: Mapping[str, Any],
        weights: Mapping[str, torch.Tensor],
        training_state: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> SaveResult:
        """Stage, write (in the background with a background writer), commit, then prune.

        Epochs inside ``min_interval_epochs`` only journal their metrics; ``force`` saves anyway
        (e.g. the final epoch).
        """
        if self._closed:
            raise CheckpointError(f"checkpoint manager for {self.directory} is closed")
        protocol.validate_metric_name(self.metric_name, metrics)
        values = {k: float(v) for k, v in metrics.items()}
        timestamp = utc_now()
        if training_state is not None:
            serialize.check_weights_only_safe(training_state)
        writer = self._writer_for(weights)
        if not (force or self._due(epoch)):
            entry = MetricRecord(epoch, step, values, timestamp, None)
            writer.submit(_JournalOnly(self, entry))
            return SaveResult(None, pending=writer.background)
        started = time.perf_counter()
        writer.flush()  # at most one save in flight
        waited = time.perf_counter() - started
        staged_weights = writer.stage("weights", dict(weights))
        staged_state = (
            None if training_state is None else writer.stage("state", dict(training_state))
        )
        needed = tensor_bytes(staged_weights) + tensor_bytes(staged_state) + OVERHEAD_BYTES
        if self._disk.ensure_space(needed, writer.flush, self._prune_unprotected):
            self.policy = self.policy if self.policy.emergency else self.policy.as_emergency()
        self._last_saved_epoch = epoch
        job = _CheckpointSave(
            self, checkpoint_id(epoch, step), epoch, step, values, timestamp,
            staged_weights, staged_state, needed,
        )  # fmt: skip
        writer.submit(job)
        background = writer.background
        return SaveResult(job.ckpt, written=not background, pending=background, waited_s=waited)

    def _failing_save(
        self, ckpt: str, needed: int, staged: serialize.StagedCheckpoint | None = None
    ) -> contextlib.AbstractContextManager[None]:
        scan = None if self.storage.local_path("") is None else self._scan_root()
        if staged is None:
            return commit.failing_save(self.storage, ckpt, needed, scan)
        claimed = staged
        return commit.failing_save(
            self.storage, ckpt, needed, scan, staged.discard, lambda: claimed.claimed
        )

    def _check_owner(self, what: str) -> None:
        """Raise :class:`TrialTakenOverError` when the worker no longer holds this trial."""
        if self.still_owner is not None and not self.still_owner():
            raise TrialTakenOverError(
                f"{self.directory}: this worker's lease on the trial was taken over while it "
                f"stalled; not committing {what}"
            )

    def _scan_root(self) -> Path:
        return self.study.folder if self.study else self.directory

    def _commit_journal(self, entry: MetricRecord) -> None:
        with self._commit_lock:
            self._check_owner(f"the metrics of epoch {entry.epoch}")
            manifest = self._manifest()
            journaled = entry if manifest.journal(entry) else None
            commit.commit_records(self.storage, manifest, manifest.checkpoints)
        self._notify(journaled)

    def _commit_checkpoint(self, record: CheckpointRecord) -> None:
        with self._commit_lock:
            self._check_owner(record.id)
            manifest = self._manifest()
            entry = MetricRecord(record.epoch, record.step, record.metrics, record.created_at,
                                 record.id)  # fmt: skip
            journaled = entry if manifest.journal(entry) else None
            manifest.architecture = manifest.architecture or self.architecture
            commit.commit_new_checkpoint(self.storage, manifest, record, self.policy)
        self._notify(journaled)

    def _unique_id(self, ckpt: str) -> str:
        """``ckpt``, or a new name when an epoch trained again reuses a committed id."""
        with self._commit_lock:
            manifest = self._manifest()
            return ckpt if manifest.record(ckpt) is None else f"{ckpt}-r{len(manifest.history)}"

    def _prune_unprotected(self) -> int:
        """Under disk pressure: drop every checkpoint of this trial but the newest full and best."""
        with self._commit_lock:
            return commit.prune_unprotected(self.storage, self._manifest())


class _JournalOnly:
    """An epoch inside ``min_interval_epochs``: nothing to write, its metrics journaled."""

    def __init__(self, manager: CheckpointManager, entry: MetricRecord) -> None:
        self.manager, self.entry = manager, entry

    def write(self) -> None:
        return None

    def commit(self) -> None:
        self.manager._commit_journal(self.entry)


class _CheckpointSave:
    """One checkpoint's save: :meth:`write` streams and hashes its files into staged objects,
    :meth:`commit` makes them durable (no manifest state, so outside the commit lock), then
    commits the record and prunes under it. Any error drops what the save left uncommitted."""

    def __init__(
        self,
        manager: CheckpointManager,
        ckpt: str,
        epoch: int,
        step: int,
        metrics: dict[str, float],
        timestamp: str,
        weights: dict[str, torch.Tensor],
        state: dict[str, Any] | None,
        needed: int,
    ) -> None:
        self.manager, self.ckpt, self.epoch, self.step = manager, ckpt, epoch, step
        self.metrics, self.timestamp, self.needed = metrics, timestamp, needed
        self.weights, self.state, self.full = weights, state, state is not None
        self.staged: serialize.StagedCheckpoint | None = None

    def write(self) -> None:
        manager = self.manager
        manager._check_owner(self.ckpt)  # before anything of it exists
        self.ckpt = manager._unique_id(self.ckpt)
        with manager._failing_save(self.ckpt, self.needed):
            self.staged = serialize.stage_checkpoint_files(
                manager.storage, self.ckpt, self.epoch, self.step, self.weights, self.state
            )
        self.weights, self.state = {}, None  # the bytes are staged: let the tensors go

    def commit(self) -> None:
        manager, staged = self.manager, self.staged
        assert staged is not None, "commit() before write()"
        with manager._failing_save(self.ckpt, self.needed, staged):
            manager._check_owner(self.ckpt)
            staged.make_durable()
            manager._commit_checkpoint(
                CheckpointRecord(
                    id=self.ckpt,
                    epoch=self.epoch,
                    step=self.step,
                    metrics=self.metrics,
                    kind=KIND_FULL if self.full else KIND_WEIGHTS,
                    files=staged.files,
                    created_at=self.timestamp,
                    code_version=manager.options.code_version,
                    config_hash=manager.config_hash,
                    architecture_hash=str((manager.architecture or {}).get("hash", "")),
                )
            )
