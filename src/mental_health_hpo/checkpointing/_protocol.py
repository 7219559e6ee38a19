"""What the trainer sees of checkpointing: one protocol, three implementations.

:class:`~mental_health_hpo.checkpointing._manager.CheckpointManager` writes for real;
:class:`~mental_health_hpo.checkpointing._null.DisabledCheckpoints` and
:class:`~mental_health_hpo.checkpointing._null.DryRunCheckpoints` write nothing. The trainer never
asks which one it holds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

import torch

from mental_health_hpo.checkpointing._errors import MetricNotFoundError
from mental_health_hpo.checkpointing._manifest import CheckpointRecord, MetricRecord
from mental_health_hpo.checkpointing._retention import RetentionPlan
from mental_health_hpo.checkpointing._verify import LoadedCheckpoint


@dataclass
class SaveResult:
    """What a save did. With a background writer the write may still be in flight."""

    checkpoint_id: str | None
    written: bool = False
    pending: bool = False
    dry_run: bool = False
    would_write: dict[str, int] = field(default_factory=dict)
    plan: RetentionPlan | None = None
    waited_s: float = 0.0  # time spent waiting for the previous background save


class Checkpointer(Protocol):
    def save(
        self,
        *,
        epoch: int,
        step: int,
        metrics: Mapping[str, Any],
        weights: Mapping[str, torch.Tensor],
        training_state: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> SaveResult: ...

    def load_latest(self) -> LoadedCheckpoint | None: ...

    def load(self, checkpoint_id: str) -> LoadedCheckpoint: ...

    def records(self) -> list[CheckpointRecord]: ...

    def best(self) -> list[CheckpointRecord]: ...

    def history(self) -> list[MetricRecord]: ...

    def last_committed_step(self) -> int | None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Checkpointer: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


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


class ContextManaged:
    """``with checkpointer:`` closes it; an error while closing never hides the original one."""

    def close(self) -> None:
        return None

    def __enter__(self) -> Any:
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
            logging.getLogger(__name__).exception("closing checkpoints failed during an error")
