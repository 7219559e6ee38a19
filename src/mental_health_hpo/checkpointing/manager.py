"""CheckpointManager: decide what to save, hand it to a writer, commit the manifest, then prune.

The trainer calls :meth:`CheckpointManager.save` every epoch. The jobs are split: the writer
(:mod:`.writers`) decides when bytes are written and what must be copied first, the serializer
(:mod:`.serialize`) streams and hashes them, retention (:mod:`.retention`) plans what stays, the
disk guard (:mod:`.pressure`) makes room, and the manifest commits. Everything the manager
decides is derived from the manifest on disk, so a restarted process continues where the last
commit left it. It only ever touches its own trial's folder.
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

from mental_health_hpo.checkpointing import commit as store
from mental_health_hpo.checkpointing import pressure, protocol, serialize, writers
from mental_health_hpo.checkpointing.atomic import make_dir_durable
from mental_health_hpo.checkpointing.disk import OVERHEAD_BYTES, tensor_bytes
from mental_health_hpo.checkpointing.errors import CheckpointError
from mental_health_hpo.checkpointing.layout import checkpoint_id, study_of
from mental_health_hpo.checkpointing.manifest import (
    CheckpointRecord,
    MetricRecord,
    manifest_kind,
    utc_now,
)
from mental_health_hpo.checkpointing.options import CheckpointOptions
from mental_health_hpo.checkpointing.orphans import sweep_temp_files, sweep_uncommitted
from mental_health_hpo.checkpointing.pressure import DiskGuard, DiskWatch, UnwatchedDisk
from mental_health_hpo.checkpointing.protocol import ContextManaged, SaveResult
from mental_health_hpo.checkpointing.queries import CommittedCheckpoints
from mental_health_hpo.checkpointing.snapshot import SnapshotPool
from mental_health_hpo.checkpointing.writers import CheckpointWriter, make_writer

logger = logging.getLogger(__name__)


class CheckpointManager(CommittedCheckpoints, ContextManaged):
    """Atomic, verified, retention-managed checkpoints of one trial.

    Use as a context manager (or call :meth:`close`): a background write is flushed on exit and
    on errors, and a failed background save is re-raised, never dropped.
    """

    def __init__(
        self,
        directory: str | Path,
        options: CheckpointOptions,
        *,
        on_commit: Callable[[MetricRecord], None] | None = None,
        snapshot_pool: SnapshotPool | None = None,
        disk: DiskGuard | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.options = options
        self.metric_name = options.metric_name
        self.architecture = dict(options.architecture) if options.architecture else None
        self.config_hash = options.config_hash
        self.on_commit = on_commit
        self.study = study_of(self.directory)
        emergency = pressure.in_emergency(self.study)
        self.policy = options.policy.as_emergency() if emergency else options.policy
        if emergency:
            logger.warning("study %s is under disk pressure: emergency retention", self.study)
        threshold = self.policy.disk_space_threshold_percent
        watch = DiskWatch(self.directory, threshold, self.study)
        self._disk: DiskGuard = disk or (watch if options.watch_disk else UnwatchedDisk())
        self._pool = snapshot_pool
        self._writer: CheckpointWriter | None = None
        self._commit_lock = threading.Lock()
        self._last_saved_epoch: int | None = None
        self._closed = False
        make_dir_durable(self.directory)
        sweep_temp_files(self.directory.parent if self.study else self.directory)
        sweep_uncommitted(self.directory, self._manifest())
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
            writer.submit(lambda: self._commit_journal_only(entry))
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
        ckpt = checkpoint_id(epoch, step)
        self._last_saved_epoch = epoch
        writer.submit(
            lambda: self._write_and_commit(
                ckpt, epoch, step, values, timestamp, staged_weights, staged_state
            )
        )
        background = writer.background
        return SaveResult(ckpt, written=not background, pending=background, waited_s=waited)

    def _commit_journal_only(self, entry: MetricRecord) -> Callable[[], None]:
        def commit() -> None:
            with self._commit_lock:
                manifest = self._manifest()
                journaled = entry if manifest.journal(entry) else None
                store.commit_records(self.directory, manifest, manifest.checkpoints)
            self._notify(journaled)

        return commit

    def _write_and_commit(
        self,
        ckpt: str,
        epoch: int,
        step: int,
        metrics: dict[str, float],
        timestamp: str,
        weights: dict[str, torch.Tensor],
        state: dict[str, Any] | None,
    ) -> Callable[[], None]:
        """Write and hash the files now; return the step that makes them durable and commits.

        A writer runs both steps at once, or the second one on its thread: the bytes are fixed
        once written, so only the wait for the disk is left to overlap training.
        """
        needed = tensor_bytes(weights) + tensor_bytes(state) + OVERHEAD_BYTES
        with self._commit_lock:
            if self._manifest().record(ckpt) is not None:
                ckpt = f"{ckpt}-r{len(self._manifest().history)}"
        with self._failing_save(ckpt, needed):
            staged = self._write_files(ckpt, epoch, step, weights, state)

        def commit() -> None:
            with self._failing_save(ckpt, needed, staged):
                staged.make_durable()  # hash and fsync: no manifest state, so outside the lock
                with self._commit_lock:
                    manifest = self._manifest()
                    record = CheckpointRecord(
                        id=ckpt,
                        epoch=epoch,
                        step=step,
                        metrics=metrics,
                        kind=manifest_kind(state),
                        files=staged.files,
                        created_at=timestamp,
                        code_version=self.options.code_version,
                        config_hash=self.config_hash,
                        architecture_hash=str((self.architecture or {}).get("hash", "")),
                    )
                    entry = MetricRecord(epoch, step, metrics, timestamp, ckpt)
                    journaled = entry if manifest.journal(entry) else None
                    manifest.architecture = manifest.architecture or self.architecture
                    store.commit_new_checkpoint(self.directory, manifest, record, self.policy)
            self._notify(journaled)

        return commit

    def _failing_save(
        self, ckpt: str, needed: int, staged: serialize.StagedCheckpoint | None = None
    ) -> contextlib.AbstractContextManager[None]:
        scan = self.study.path if self.study else self.directory
        return store.failing_save(self.directory, ckpt, needed, scan, staged)

    def _write_files(
        self,
        ckpt: str,
        epoch: int,
        step: int,
        weights: dict[str, torch.Tensor],
        state: dict[str, Any] | None,
    ) -> serialize.StagedCheckpoint:
        return serialize.stage_checkpoint_files(self.directory, ckpt, epoch, step, weights, state)

    def _prune_unprotected(self) -> int:
        """Under disk pressure: drop every checkpoint of this trial but the newest full and best."""
        with self._commit_lock:
            return store.prune_unprotected(self.directory, self._manifest())
