"""Checkpointing that writes nothing: disabled, and a dry run that says what it would do.

Both follow the same protocol as :class:`~.manager.CheckpointManager`, so the trainer runs the
same code with checkpoints off, on, or planned.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from mental_health_hpo.checkpointing._errors import CheckpointError
from mental_health_hpo.checkpointing._manifest import (
    FLAG_BEST,
    KIND_FULL,
    KIND_WEIGHTS,
    CheckpointRecord,
    FileEntry,
    Manifest,
    MetricRecord,
    read_manifest,
    utc_now,
)
from mental_health_hpo.checkpointing._options import CheckpointOptions
from mental_health_hpo.checkpointing._pressure import human_bytes, tensor_bytes
from mental_health_hpo.checkpointing._protocol import (
    ContextManaged,
    SaveResult,
    validate_metric_name,
)
from mental_health_hpo.checkpointing._retention import OVERHEAD_BYTES, apply_plan, plan_retention
from mental_health_hpo.checkpointing._verify import LoadedCheckpoint, load_newest_full
from mental_health_hpo.workspace.layout import STATE_FILE, WEIGHTS_FILE, checkpoint_id
from mental_health_hpo.workspace.storage import Storage

logger = logging.getLogger(__name__)


class _InMemoryJournal(ContextManaged):
    """What both implementations share: a journal in memory and the protocol's plumbing."""

    def __init__(
        self,
        options: CheckpointOptions,
        on_commit: Callable[[MetricRecord], None] | None = None,
    ) -> None:
        self.options = options
        self.metric_name = options.metric_name
        self.config_hash = options.config_hash
        self.policy = options.policy
        self.on_commit = on_commit
        self._history: list[MetricRecord] = []

    def _journal(
        self, epoch: int, step: int, metrics: Mapping[str, Any], ckpt: str | None
    ) -> dict[str, float]:
        validate_metric_name(self.metric_name, metrics)
        values = {k: float(v) for k, v in metrics.items()}
        entry = MetricRecord(epoch, step, values, utc_now(), ckpt)
        self._history.append(entry)
        if self.on_commit is not None:
            self.on_commit(entry)
        return values

    def history(self) -> list[MetricRecord]:
        return list(self._history)

    def last_committed_step(self) -> int | None:
        return self._history[-1].step if self._history else None

    def flush(self) -> None:
        return None


class DisabledCheckpoints(_InMemoryJournal):
    """No files at all, no folder: metrics still reach ``on_commit``; nothing can be resumed."""

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
        self._journal(epoch, step, metrics, None)
        return SaveResult(None)

    def load_latest(self) -> LoadedCheckpoint | None:
        return None

    def load(self, checkpoint_id: str) -> LoadedCheckpoint:
        raise CheckpointError(f"checkpointing is disabled: no checkpoint {checkpoint_id!r}")

    def records(self) -> list[CheckpointRecord]:
        return []

    def best(self) -> list[CheckpointRecord]:
        return []


class DryRunCheckpoints(_InMemoryJournal):
    """Plans every save against the committed manifest (if any) and logs what it would write,
    demote and delete. Reads what is committed; writes nothing."""

    def __init__(
        self,
        directory: str | Path | Storage,
        options: CheckpointOptions,
        on_commit: Callable[[MetricRecord], None] | None = None,
    ) -> None:
        super().__init__(options, on_commit)
        self.directory = Path(directory) if isinstance(directory, str) else directory
        self._committed = Manifest(metric_name=self.metric_name)
        with contextlib.suppress(CheckpointError):
            self._committed = read_manifest(self.directory) or self._committed
        self._planned = list(self._committed.checkpoints)
        self._last_epoch = max((r.epoch for r in self._planned), default=None)

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
        due = force or self.policy.epoch_due(epoch, self._last_epoch)
        ckpt = checkpoint_id(epoch, step) if due else None
        values = self._journal(epoch, step, metrics, ckpt)
        if ckpt is None:
            logger.info("dry run: epoch %d would journal metrics only (min_interval)", epoch)
            return SaveResult(None, dry_run=True)
        sizes = {WEIGHTS_FILE: tensor_bytes(dict(weights)) + OVERHEAD_BYTES}
        if training_state is not None:
            sizes[STATE_FILE] = tensor_bytes(dict(training_state))
        files = {n: FileEntry(f"{ckpt}/{n}", "", s) for n, s in sizes.items()}
        kind = KIND_FULL if training_state is not None else KIND_WEIGHTS
        record = CheckpointRecord(ckpt, epoch, step, values, kind, files, utc_now())
        records = [*self._planned, record]
        plan = plan_retention(records, self.policy, self.metric_name)
        self._planned = apply_plan(records, plan)
        self._last_epoch = epoch
        logger.info(
            "dry run: would write %s (%s), demote %s, delete %s; %s retained",
            ckpt,
            human_bytes(sum(sizes.values())),
            list(plan.demote),
            list(plan.delete),
            human_bytes(plan.bytes_after),
        )
        return SaveResult(ckpt, dry_run=True, would_write=sizes, plan=plan)

    def load_latest(self) -> LoadedCheckpoint | None:
        """What a real run would resume from: the committed checkpoints, never quarantined."""
        arch = self.options.architecture
        return load_newest_full(self.directory, self._committed.checkpoints, arch)

    def load(self, checkpoint_id: str) -> LoadedCheckpoint:
        raise CheckpointError(f"dry run: checkpoint {checkpoint_id!r} is only planned")

    def records(self) -> list[CheckpointRecord]:
        return sorted(self._planned, key=lambda r: (r.step, r.epoch))

    def best(self) -> list[CheckpointRecord]:
        return [r for r in self.records() if FLAG_BEST in r.flags]
