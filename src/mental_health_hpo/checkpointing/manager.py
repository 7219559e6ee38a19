"""CheckpointManager: snapshot, write durably, commit the manifest, then prune.

The trainer calls :meth:`CheckpointManager.save` every epoch. Everything the manager decides is
derived from the manifest on disk, so a restarted process continues where the last commit left it.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes

from mental_health_hpo.checkpointing.async_writer import AsyncWriter
from mental_health_hpo.checkpointing.atomic import (
    atomic_write_bytes,
    fsync_dir,
    make_dir_durable,
)
from mental_health_hpo.checkpointing.commit import commit_records, remove_tree
from mental_health_hpo.checkpointing.disk import (
    OVERHEAD_BYTES,
    disk_usage,
    human_bytes,
    insufficient_space_error,
    tensor_bytes,
)
from mental_health_hpo.checkpointing.errors import (
    CheckpointError,
    CheckpointIntegrityError,
    InsufficientDiskSpaceError,
    MetricNotFoundError,
    UnsafeCheckpointError,
)
from mental_health_hpo.checkpointing.hashing import sha256_bytes
from mental_health_hpo.checkpointing.manifest import (
    FLAG_BEST,
    KIND_FULL,
    KIND_WEIGHTS,
    STATE_FILE,
    WEIGHTS_FILE,
    CheckpointRecord,
    FileEntry,
    Manifest,
    MetricRecord,
    checkpoint_id,
    manifest_path,
    read_manifest,
    utc_now,
    write_manifest,
)
from mental_health_hpo.checkpointing.orphans import QUARANTINE_DIRNAME, sweep_uncommitted
from mental_health_hpo.checkpointing.policy import RetentionPolicy
from mental_health_hpo.checkpointing.retention import (
    RetentionPlan,
    apply_plan,
    plan_emergency,
    plan_retention,
)
from mental_health_hpo.checkpointing.snapshot import SnapshotPool, as_cpu, snapshot, unshared
from mental_health_hpo.checkpointing.study import (
    apply_study_retention,
    finish_trial,
)
from mental_health_hpo.checkpointing.verify import LoadedCheckpoint, load_record

logger = logging.getLogger(__name__)

PRESSURE_MARKER = "retention_pressure.json"
_SAFE_LEAVES = (str, int, float, bool, type(None), torch.dtype, torch.device, torch.Size)


def validate_metric_name(name: str, available: Mapping[str, Any] | Any) -> None:
    """Raise :class:`MetricNotFoundError` unless ``name`` is among the ``available`` metrics.

    The trainer calls this before training starts, so a typo fails in seconds, not after an epoch.
    """
    names = sorted(available) if not isinstance(available, str) else [available]
    if name not in names:
        raise MetricNotFoundError(
            f"optimization metric {name!r} is not among the logged metrics {names}; "
            "set metric_name to one of them"
        )


def code_version() -> str:
    """The package version, plus the git commit when one is recorded in the environment."""
    try:
        from mental_health_hpo import __version__ as version
    except ImportError:  # pragma: no cover
        version = "unknown"
    commit = os.environ.get("GIT_COMMIT", "")
    return f"{version}+{commit[:12]}" if commit else str(version)


def check_weights_only_safe(obj: Any, where: str = "training_state") -> None:
    """Raise :class:`UnsafeCheckpointError` for anything weights-only loading would refuse."""
    if isinstance(obj, (torch.Tensor, *_SAFE_LEAVES)):
        return
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if not isinstance(key, str | int):
                raise UnsafeCheckpointError(f"{where}: key {key!r} is not a str or int")
            check_weights_only_safe(value, f"{where}[{key!r}]")
        return
    if isinstance(obj, list | tuple):
        for index, value in enumerate(obj):
            check_weights_only_safe(value, f"{where}[{index}]")
        return
    raise UnsafeCheckpointError(
        f"{where} is a {type(obj).__name__}: only tensors, numbers, strings, lists, tuples and "
        "dicts load with torch.load(weights_only=True) (see training.seeds.capture_rng_state)"
    )


@dataclass
class SaveResult:
    """What a save did. In async mode the write may still be in flight (``pending``)."""

    checkpoint_id: str | None
    written: bool = False
    pending: bool = False
    dry_run: bool = False
    would_write: dict[str, int] = field(default_factory=dict)
    plan: RetentionPlan | None = None
    waited_s: float = 0.0  # async: time spent waiting for the previous save to finish


class CheckpointManager:
    """Atomic, verified, retention-managed checkpoints of one trial.

    Use as a context manager (or call :meth:`close`): the background writer is flushed on exit
    and on errors, and a failed background save is re-raised, never dropped.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        policy: RetentionPolicy | None = None,
        metric_name: str,
        architecture: Mapping[str, Any] | None = None,
        config_hash: str = "",
        async_save: bool = True,
        enabled: bool = True,
        dry_run: bool = False,
        on_commit: Callable[[MetricRecord], None] | None = None,
        study_dir: str | Path | None = None,
        check_disk: bool = True,
        code_version_str: str | None = None,
        snapshot_pool: SnapshotPool | None = None,
    ) -> None:
        if not metric_name:
            raise MetricNotFoundError("metric_name must name the optimization metric")
        self.directory = Path(directory)
        self.policy = policy or RetentionPolicy()
        self.metric_name = metric_name
        self.architecture = dict(architecture) if architecture else None
        self.config_hash = config_hash
        self.enabled = enabled
        self.dry_run = dry_run
        self.on_commit = on_commit
        self.check_disk = check_disk
        self.code_version = code_version_str if code_version_str is not None else code_version()
        self.study_dir = Path(study_dir) if study_dir else self._infer_study_dir()
        self._memory_history: list[MetricRecord] = []
        self._simulated: Manifest | None = None
        self._commit_lock = threading.Lock()
        self._inflight: tuple[str, int] | None = None  # (id, bytes) of the save in flight
        self._last_saved_epoch: int | None = None
        self._closed = False
        self._writer: AsyncWriter | None = None
        self._own_pool = snapshot_pool is None
        self._pool = snapshot_pool or SnapshotPool()
        if not enabled:
            return
        if dry_run:
            with contextlib.suppress(CheckpointError):
                self._simulated = read_manifest(self.directory)
            return
        make_dir_durable(self.directory)
        manifest = self._read_manifest_or_quarantine()
        sweep_uncommitted(self.directory, manifest)
        self._apply_study_pressure_marker()
        if async_save:
            self._pool.acquire(self)  # before the thread starts: a refusal leaks nothing
        self._writer = AsyncWriter() if async_save else None
        atexit.register(self._atexit_flush)

    # ------------------------------------------------------------------ context / lifecycle
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
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            self._pool.release(self)
            if self._own_pool:  # a shared pool keeps its buffers for the next trial
                self._pool.clear()

    # ------------------------------------------------------------------ helpers
    def _infer_study_dir(self) -> Path | None:
        trial = self.directory.parent
        return trial.parent if trial.parent.name.startswith("study_") else None

    def _read_manifest_or_quarantine(self) -> Manifest | None:
        try:
            return read_manifest(self.directory)
        except CheckpointError as exc:
            target = self.directory / QUARANTINE_DIRNAME
            make_dir_durable(target)
            moved = target / f"manifest-{utc_now().replace(':', '')}.json"
            manifest_path(self.directory).replace(moved)
            fsync_dir(self.directory)
            logger.warning("%s; moved it to %s and starting with no checkpoints", exc, moved)
            return None

    def _manifest(self) -> Manifest:
        if self._simulated is not None or self.dry_run:
            if self._simulated is None:
                self._simulated = self._new_manifest()
            return self._simulated
        return self._read_manifest_or_quarantine() or self._new_manifest()

    def _loadable_manifest(self) -> Manifest:
        """What loads read: the committed manifest (also in dry-run mode, which writes none)."""
        if self.dry_run:
            try:
                return read_manifest(self.directory) or self._new_manifest()
            except CheckpointError:
                return self._new_manifest()
        return self._manifest()

    def _new_manifest(self) -> Manifest:
        return Manifest(
            metric_name=self.metric_name,
            code_version=self.code_version,
            config_hash=self.config_hash,
            architecture=self.architecture,
        )

    def _apply_study_pressure_marker(self) -> None:
        if self.study_dir is not None and (self.study_dir / PRESSURE_MARKER).exists():
            logger.warning("study %s is under disk pressure: emergency retention", self.study_dir)
            self.policy = self.policy.as_emergency()

    def _notify(self, record: MetricRecord) -> None:
        if self.on_commit is not None:
            self.on_commit(record)

    def _check_open(self) -> None:
        if self._closed:
            raise CheckpointError(f"checkpoint manager for {self.directory} is closed")

    def _due(self, epoch: int) -> bool:
        last = self._last_saved_epoch
        if last is None:
            manifest = self._manifest()
            last = max((r.epoch for r in manifest.checkpoints), default=None)
        return last is None or epoch - last >= self.policy.min_interval_epochs or epoch < last

    # ------------------------------------------------------------------ save
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
        """Snapshot now, write (in the background when async), commit, then prune.

        Epochs inside ``min_interval_epochs`` only journal their metrics; ``force`` saves anyway
        (e.g. the final epoch). Returns once the tensors are copied.
        """
        self._check_open()
        validate_metric_name(self.metric_name, metrics)
        values = {k: float(v) for k, v in metrics.items()}
        timestamp = utc_now()
        if not self.enabled:
            record = MetricRecord(epoch, step, values, timestamp, None)
            self._memory_history.append(record)
            self._notify(record)
            return SaveResult(None)
        if training_state is not None:
            check_weights_only_safe(training_state)
        due = force or self._due(epoch)
        if self.dry_run:
            return self._dry_run_save(epoch, step, values, timestamp, weights, training_state, due)
        if not due:
            entry = MetricRecord(epoch, step, values, timestamp, None)
            self._run(lambda: self._commit_journal_only(entry))
            return SaveResult(None, pending=self._writer is not None)
        # Sync saves write before returning, so they need no copy (only CPU, contiguous views).
        # Async: alternate two buffer sets. The set used two saves ago is free: the previous
        # save's submit waited for it to finish, and at most one save is ever in flight.
        waited = 0.0
        if self._writer is None:
            weights_copy = unshared(as_cpu(dict(weights)))
            state_copy = as_cpu(dict(training_state)) if training_state is not None else None
        else:
            started = time.perf_counter()
            self._writer.flush()  # at most one save in flight: wait for the previous one
            waited = time.perf_counter() - started
            pool = self._pool.next_set()
            weights_copy = snapshot(dict(weights), pool, "weights")
            state_copy = None
            if training_state is not None:
                state_copy = snapshot(dict(training_state), pool, "state")
        needed = tensor_bytes(weights_copy) + tensor_bytes(state_copy) + OVERHEAD_BYTES
        self._ensure_space(needed)
        ckpt = checkpoint_id(epoch, step)
        self._last_saved_epoch = epoch

        def job() -> None:
            self._write_and_commit(ckpt, epoch, step, values, timestamp, weights_copy, state_copy)

        self._inflight = (ckpt, needed)
        self._run(job)
        return SaveResult(
            ckpt, written=self._writer is None, pending=self._writer is not None, waited_s=waited
        )

    def _run(self, job: Callable[[], None]) -> None:
        if self._writer is None:
            job()
        else:
            self._writer.submit(job)

    def _commit_journal_only(self, entry: MetricRecord) -> None:
        with self._commit_lock:
            manifest = self._manifest()
            manifest.history.append(entry)
            commit_records(self.directory, manifest, manifest.checkpoints)
        self._notify(entry)

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
        token = ckpt
        try:
            with self._commit_lock:
                manifest = self._manifest()
                if manifest.record(ckpt) is not None:
                    ckpt = f"{ckpt}-r{len(manifest.history)}"
                files = self._write_files(ckpt, epoch, step, weights, state)
                record = CheckpointRecord(
                    id=ckpt,
                    epoch=epoch,
                    step=step,
                    metrics=metrics,
                    kind=KIND_FULL if state is not None else KIND_WEIGHTS,
                    files=files,
                    created_at=timestamp,
                    code_version=self.code_version,
                    config_hash=self.config_hash,
                    architecture_hash=str((self.architecture or {}).get("hash", "")),
                )
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
                entry = MetricRecord(epoch, step, metrics, timestamp, ckpt)
                manifest.history.append(entry)
                manifest.architecture = manifest.architecture or self.architecture
                # The new record counts as existing, so that a plan dropping it at once (it is
                # neither best nor newest by step) also removes its folder.
                manifest.checkpoints = records
                commit_records(self.directory, manifest, apply_plan(records, plan))
        except BaseException as exc:
            self._discard_uncommitted(ckpt)
            if not isinstance(exc, OSError):
                raise
            if exc.errno == 28:  # ENOSPC
                raise insufficient_space_error(
                    self.directory,
                    tensor_bytes(weights) + tensor_bytes(state) + OVERHEAD_BYTES,
                    self._scan_roots(),
                    self._experiments_dir(),
                ) from exc
            raise
        finally:
            if self._inflight is not None and self._inflight[0] == token:
                self._inflight = None
        self._notify(entry)

    def _discard_uncommitted(self, ckpt: str) -> None:
        """After a failed save: remove its folder unless the manifest already committed it."""
        try:
            manifest = read_manifest(self.directory)
        except CheckpointError:
            return
        if manifest is None or manifest.record(ckpt) is None:
            remove_tree(self.directory / ckpt)

    def _write_files(
        self,
        ckpt: str,
        epoch: int,
        step: int,
        weights: dict[str, torch.Tensor],
        state: dict[str, Any] | None,
    ) -> dict[str, FileEntry]:
        folder = self.directory / ckpt
        if folder.exists():  # uncommitted leftover of the same id
            remove_tree(folder)
        make_dir_durable(folder)
        meta = {"checkpoint_id": ckpt, "epoch": str(epoch), "step": str(step)}
        payloads = {WEIGHTS_FILE: safetensors_bytes(weights, metadata=meta)}
        if state is not None:
            buffer = io.BytesIO()
            torch.save(state, buffer)
            payloads[STATE_FILE] = buffer.getvalue()
        files = {}
        for name, data in payloads.items():
            atomic_write_bytes(folder / name, data)
            files[name] = FileEntry(f"{ckpt}/{name}", sha256_bytes(data), len(data))
        fsync_dir(folder)
        return files

    def _dry_run_save(
        self,
        epoch: int,
        step: int,
        metrics: dict[str, float],
        timestamp: str,
        weights: Mapping[str, torch.Tensor],
        state: Mapping[str, Any] | None,
        due: bool,
    ) -> SaveResult:
        manifest = self._manifest()
        ckpt = checkpoint_id(epoch, step) if due else None
        entry = MetricRecord(epoch, step, metrics, timestamp, ckpt)
        manifest.history.append(entry)
        if ckpt is None:
            logger.info("dry run: epoch %d would journal metrics only (min_interval)", epoch)
            self._notify(entry)
            return SaveResult(None, dry_run=True)
        sizes = {WEIGHTS_FILE: tensor_bytes(dict(weights)) + OVERHEAD_BYTES}
        if state is not None:
            sizes[STATE_FILE] = tensor_bytes(dict(state))
        files = {n: FileEntry(f"{ckpt}/{n}", "", s) for n, s in sizes.items()}
        record = CheckpointRecord(
            ckpt,
            epoch,
            step,
            metrics,
            KIND_FULL if state is not None else KIND_WEIGHTS,
            files,
            timestamp,
        )
        records = [*manifest.checkpoints, record]
        plan = plan_retention(records, self.policy, self.metric_name)
        manifest.checkpoints = apply_plan(records, plan)
        self._last_saved_epoch = epoch
        logger.info(
            "dry run: would write %s (%s), demote %s, delete %s; %s retained",
            ckpt,
            human_bytes(sum(sizes.values())),
            list(plan.demote),
            list(plan.delete),
            human_bytes(plan.bytes_after),
        )
        self._notify(entry)
        return SaveResult(ckpt, dry_run=True, would_write=sizes, plan=plan)

    # ------------------------------------------------------------------ disk pressure
    def _experiments_dir(self) -> Path:
        return self.study_dir.parent if self.study_dir else self.directory.parent.parent

    def _scan_roots(self) -> list[Path]:
        return [self.study_dir] if self.study_dir else [self.directory]

    def _room(self, needed: int) -> tuple[bool, bool]:
        """(fits at all, fits above the free-space threshold)."""
        usage = disk_usage(self.directory)
        pending = self._inflight[1] if self._inflight else 0
        threshold = usage.total * self.policy.disk_space_threshold_percent / 100
        free = usage.free - pending
        return free >= needed, free - needed >= threshold

    def _ensure_space(self, needed: int) -> None:
        """FR-034 preflight before a save, with FR-028 aggressive pruning and the FR-014 error."""
        if not self.check_disk:
            return
        fits, comfortable = self._room(needed)
        if comfortable:
            return
        self.flush()  # measure without a save in flight
        fits, comfortable = self._room(needed)
        if comfortable:
            return
        logger.warning("free space below %s%%: pruning", self.policy.disk_space_threshold_percent)
        self._prune_trial(plan_emergency)  # step 1: every unprotected checkpoint of this trial
        fits, comfortable = self._room(needed)
        if not comfortable:
            self._enter_emergency()  # step 2: keep_best_k=1, keep_last_n=0 from now on
            if self.study_dir is not None:  # step 3: only the single best trial keeps weights
                apply_study_retention(
                    self.study_dir, 1, self.metric_name, exclude=[self.directory.parent]
                )
            fits, comfortable = self._room(needed)
        if not fits:
            raise insufficient_space_error(
                self.directory, needed, self._scan_roots(), self._experiments_dir()
            )
        if not comfortable:
            logger.warning("saving below the free-space threshold (%s)", self.directory)

    def _prune_trial(self, planner: Callable[[list[CheckpointRecord], str], RetentionPlan]) -> int:
        with self._commit_lock:
            manifest = self._manifest()
            plan = planner(list(manifest.checkpoints), self.metric_name)
            if not plan.changes_anything:
                return 0
            return commit_records(self.directory, manifest, apply_plan(manifest.checkpoints, plan))

    def _enter_emergency(self) -> None:
        if not self.policy.emergency:
            self.policy = self.policy.as_emergency()
        if self.study_dir is not None:
            marker = self.study_dir / PRESSURE_MARKER
            if not marker.exists():
                atomic_write_bytes(marker, f'{{"since": "{utc_now()}"}}\n'.encode())

    # ------------------------------------------------------------------ loading / queries
    def load_latest(self) -> LoadedCheckpoint | None:
        """The newest valid full checkpoint; corrupt ones are skipped (quarantined) with a warning.

        Returns None when none is valid: resume then starts from epoch 0 (FR-030).
        """
        if not self.enabled:
            return None
        self.flush()
        manifest = self._loadable_manifest()
        candidates = sorted(
            (r for r in manifest.checkpoints if r.is_full), key=lambda r: (-r.step, -r.epoch)
        )
        for record in candidates:
            try:
                return load_record(self.directory, record, self.architecture)
            except CheckpointError as exc:
                logger.warning("skipping checkpoint %s: %s", record.id, exc)
                if isinstance(exc, CheckpointIntegrityError) and not self.dry_run:
                    self._quarantine(record)
        if candidates:
            logger.warning("no valid checkpoint in %s: starting from epoch 0", self.directory)
        return None

    def _quarantine(self, record: CheckpointRecord) -> None:
        """Drop a corrupt record from the manifest so it no longer counts as newest or best."""
        with self._commit_lock:
            manifest = self._manifest()
            kept = [r for r in manifest.checkpoints if r.id != record.id]
            target = self.directory / QUARANTINE_DIRNAME
            make_dir_durable(target)
            manifest.checkpoints = kept
            write_manifest(self.directory, manifest)
            source = self.directory / record.id
            if source.exists():
                source.replace(target / f"{record.id}-{utc_now().replace(':', '')}")
                fsync_dir(self.directory)
                fsync_dir(target)
        # recompute flags among the remaining records (best may have moved)
        self._prune_trial(lambda records, metric: plan_retention(records, self.policy, metric))

    def load(self, checkpoint_id: str) -> LoadedCheckpoint:
        """Load a named checkpoint; raises :class:`CheckpointError` saying why it cannot."""
        self.flush()
        manifest = self._loadable_manifest()
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
        if not self.enabled:
            return list(self._memory_history)
        return list(self._manifest().history)

    def last_committed_step(self) -> int | None:
        """Step of the last committed journal entry, None before the first commit."""
        history = self.history()
        return history[-1].step if history else None

    def finish(self, keep_best_trials: int | None = None) -> None:
        """Trial done: drop resume state, keep best weights, then apply study-level retention."""
        self.flush()
        if not self.enabled or self.dry_run:
            return
        with self._commit_lock:
            finish_trial(self.directory, self.metric_name)
        if self.study_dir is not None:
            keep = keep_best_trials or self.policy.keep_best_trials
            if self.policy.emergency:
                keep = 1
            apply_study_retention(self.study_dir, keep, self.metric_name)


__all__ = [
    "CheckpointManager",
    "InsufficientDiskSpaceError",
    "SaveResult",
    "check_weights_only_safe",
    "validate_metric_name",
]
