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
import errno
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

from mental_health_hpo.checkpointing.atomic import fsync_dir, make_dir_durable
from mental_health_hpo.checkpointing.commit import commit_records, remove_tree
from mental_health_hpo.checkpointing.disk import (
    OVERHEAD_BYTES,
    human_bytes,
    insufficient_space_error,
    tensor_bytes,
)
from mental_health_hpo.checkpointing.errors import CheckpointError
from mental_health_hpo.checkpointing.layout import (
    QUARANTINE_DIRNAME,
    STATE_FILE,
    WEIGHTS_FILE,
    checkpoint_id,
    study_of,
)
from mental_health_hpo.checkpointing.manifest import (
    FLAG_BEST,
    KIND_FULL,
    KIND_WEIGHTS,
    CheckpointRecord,
    FileEntry,
    Manifest,
    MetricRecord,
    manifest_path,
    read_manifest,
    utc_now,
    write_manifest,
)
from mental_health_hpo.checkpointing.options import CheckpointOptions
from mental_health_hpo.checkpointing.orphans import sweep_temp_files, sweep_uncommitted
from mental_health_hpo.checkpointing.pressure import (
    DiskGuard,
    DiskWatch,
    UnwatchedDisk,
    in_emergency,
)
from mental_health_hpo.checkpointing.protocol import SaveResult, validate_metric_name
from mental_health_hpo.checkpointing.recovery import rebuild_manifest, write_record_copy
from mental_health_hpo.checkpointing.retention import apply_plan, plan_emergency, plan_retention
from mental_health_hpo.checkpointing.serialize import (
    check_weights_only_safe,
    write_torch_state,
    write_weights,
)
from mental_health_hpo.checkpointing.snapshot import SnapshotPool
from mental_health_hpo.checkpointing.verify import LoadedCheckpoint, load_newest_full, load_record
from mental_health_hpo.checkpointing.writers import (
    CheckpointWriter,
    make_writer,
    state_on_accelerator,
)

logger = logging.getLogger(__name__)


class CheckpointManager:
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
        emergency = in_emergency(self.study)
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

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except Exception:
            logger.exception("checkpoint writer failed while handling another error")

    def _atexit_flush(self) -> None:
        try:
            self.close()
        except Exception:
            logger.exception("background checkpoint save failed at interpreter exit")

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

    def _writer_for(self, weights: Mapping[str, torch.Tensor]) -> CheckpointWriter:
        if self._writer is None:  # chosen at the first save, when the state's device is known
            on_device = state_on_accelerator(dict(weights))
            self._writer = make_writer(self.options.writer, on_device, self._pool)
        return self._writer

    # ---------------------------------------------------------------- manifest
    def _new_manifest(self) -> Manifest:
        return Manifest(
            metric_name=self.metric_name,
            code_version=self.options.code_version,
            config_hash=self.config_hash,
            architecture=self.architecture,
        )

    def _manifest(self) -> Manifest:
        """The committed manifest; an unreadable one is set aside and rebuilt, never ignored."""
        try:
            return read_manifest(self.directory) or self._new_manifest()
        except CheckpointError as exc:
            target = self.directory / QUARANTINE_DIRNAME
            make_dir_durable(target)
            moved = target / f"manifest-{utc_now().replace(':', '')}.json"
            manifest_path(self.directory).replace(moved)
            fsync_dir(self.directory)
            logger.warning("%s; moved it to %s", exc, moved)
            manifest = rebuild_manifest(self.directory, self._new_manifest())
            plan = plan_retention(manifest.checkpoints, self.policy, self.metric_name)
            manifest.checkpoints = apply_plan(manifest.checkpoints, plan)
            write_manifest(self.directory, manifest)
            return manifest

    def _journal(self, manifest: Manifest, entry: MetricRecord) -> MetricRecord | None:
        """Append ``entry`` unless its step is journaled already (and so maybe published):
        an epoch trained again after a restart never publishes a step a second time."""
        if manifest.history and entry.step <= manifest.history[-1].step:
            logger.info("step %d was journaled before; keeping the first values", entry.step)
            return None
        manifest.history.append(entry)
        return entry

    def _notify(self, entry: MetricRecord | None) -> None:
        if entry is not None and self.on_commit is not None:
            self.on_commit(entry)

    def _due(self, epoch: int) -> bool:
        last = self._last_saved_epoch
        if last is None:
            last = max((r.epoch for r in self._manifest().checkpoints), default=None)
        return last is None or epoch - last >= self.policy.min_interval_epochs or epoch < last

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
        validate_metric_name(self.metric_name, metrics)
        values = {k: float(v) for k, v in metrics.items()}
        timestamp = utc_now()
        if training_state is not None:
            check_weights_only_safe(training_state)
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

    def _commit_journal_only(self, entry: MetricRecord) -> None:
        with self._commit_lock:
            manifest = self._manifest()
            journaled = self._journal(manifest, entry)
            commit_records(self.directory, manifest, manifest.checkpoints)
        self._notify(journaled)

    def _write_and_commit(
        self,
        ckpt: str,
        epoch: int,
        step: int,
        metrics: dict[str, float],
        timestamp: str,
        weights: dict[str, torch.Tensor],
        state: dict[str, Any] | None,
    ) -> None:
        try:
            with self._commit_lock:
                manifest = self._manifest()
                if manifest.record(ckpt) is not None:
                    ckpt = f"{ckpt}-r{len(manifest.history)}"
                record = CheckpointRecord(
                    id=ckpt,
                    epoch=epoch,
                    step=step,
                    metrics=metrics,
                    kind=KIND_FULL if state is not None else KIND_WEIGHTS,
                    files=self._write_files(ckpt, epoch, step, weights, state),
                    created_at=timestamp,
                    code_version=self.options.code_version,
                    config_hash=self.config_hash,
                    architecture_hash=str((self.architecture or {}).get("hash", "")),
                )
                write_record_copy(self.directory, record)
                # The new record counts as existing, so a plan that drops it at once (neither
                # best nor newest by step) also removes its folder.
                records = [*manifest.checkpoints, record]
                plan = plan_retention(records, self.policy, self.metric_name)
                if plan.over_budget:
                    logger.warning(
                        "checkpoints of %s use %s, above max_total_size %s; only protected "
                        "checkpoints remain",
                        self.directory,
                        human_bytes(plan.bytes_after),
                        human_bytes(self.policy.max_total_size),
                    )
                journaled = self._journal(
                    manifest, MetricRecord(epoch, step, metrics, timestamp, ckpt)
                )
                manifest.architecture = manifest.architecture or self.architecture
                manifest.checkpoints = records
                commit_records(self.directory, manifest, apply_plan(records, plan))
        except BaseException as exc:
            self._discard_uncommitted(ckpt)
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                needed = tensor_bytes(weights) + tensor_bytes(state) + OVERHEAD_BYTES
                study = [self.study.path] if self.study else [self.directory]
                raise insufficient_space_error(self.directory, needed, study) from exc
            raise
        self._notify(journaled)

    def _write_files(
        self,
        ckpt: str,
        epoch: int,
        step: int,
        weights: dict[str, torch.Tensor],
        state: dict[str, Any] | None,
    ) -> dict[str, FileEntry]:
        folder = self.directory / ckpt
        if folder.exists():  # an uncommitted leftover of the same id
            remove_tree(folder)
        make_dir_durable(folder)
        meta = {"checkpoint_id": ckpt, "epoch": str(epoch), "step": str(step)}
        written = {WEIGHTS_FILE: write_weights(folder / WEIGHTS_FILE, weights, meta)}
        if state is not None:
            written[STATE_FILE] = write_torch_state(folder / STATE_FILE, state)
        return {n: FileEntry(f"{ckpt}/{n}", w.sha256, w.size) for n, w in written.items()}

    def _discard_uncommitted(self, ckpt: str) -> None:
        """After a failed save: remove its folder unless the manifest already committed it."""
        try:
            manifest = read_manifest(self.directory)
        except CheckpointError:
            return
        if manifest is None or manifest.record(ckpt) is None:
            remove_tree(self.directory / ckpt)

    def _prune_unprotected(self) -> int:
        """Under disk pressure: drop every checkpoint of this trial but the newest full and best."""
        with self._commit_lock:
            manifest = self._manifest()
            plan = plan_emergency(list(manifest.checkpoints), self.metric_name)
            if not plan.changes_anything:
                return 0
            return commit_records(self.directory, manifest, apply_plan(manifest.checkpoints, plan))

    # ---------------------------------------------------------------- load and query
    def load_latest(self) -> LoadedCheckpoint | None:
        """The newest valid full checkpoint; corrupt ones are quarantined with a warning."""
        self.flush()
        records = self._manifest().checkpoints
        return load_newest_full(self.directory, records, self.architecture, self._quarantine)

    def _quarantine(self, record: CheckpointRecord) -> None:
        """Drop a corrupt record so it no longer counts as newest or best; keep its files aside."""
        with self._commit_lock:
            manifest = self._manifest()
            target = self.directory / QUARANTINE_DIRNAME
            make_dir_durable(target)
            remaining = [r for r in manifest.checkpoints if r.id != record.id]
            manifest.checkpoints = apply_plan(
                remaining, plan_retention(remaining, self.policy, self.metric_name)
            )
            write_manifest(self.directory, manifest)
            source = self.directory / record.id
            if source.exists():
                source.replace(target / f"{record.id}-{utc_now().replace(':', '')}")
                fsync_dir(self.directory)
                fsync_dir(target)

    def load(self, checkpoint_id: str) -> LoadedCheckpoint:
        """Load a named checkpoint; raises :class:`CheckpointError` saying why it cannot."""
        self.flush()
        manifest = self._manifest()
        record = manifest.record(checkpoint_id)
        if record is None:
            known = [r.id for r in manifest.checkpoints]
            raise CheckpointError(
                f"checkpoint {checkpoint_id!r} is not in {manifest_path(self.directory)} "
                f"(committed: {known or 'none'})"
            )
        try:
            return load_record(self.directory, record, self.architecture, record.is_full)
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
