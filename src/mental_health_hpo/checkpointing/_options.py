"""What a trial's checkpointing is told: one options dataclass instead of a dozen keywords."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mental_health_hpo import code_version
from mental_health_hpo.checkpointing._errors import MetricNotFoundError
from mental_health_hpo.checkpointing._retention import RetentionPolicy

#: ``write`` saves for real; ``disabled`` writes nothing and only journals metrics in memory;
#: ``dry_run`` plans every save and logs what it would write and prune, writing nothing.
CheckpointMode = Literal["write", "disabled", "dry_run"]

#: ``sync`` writes and commits before ``save`` returns, straight from the live tensors (no copy).
#: ``deferred`` writes and hashes before ``save`` returns, and leaves the fsync, rename and commit
#: to a thread (waiting for the disk costs no CPU). ``async`` snapshots into one reused buffer set
#: (pinned on CUDA) and writes on a thread. ``auto`` is async when the state lives on an
#: accelerator and deferred on CPU, where a serializing thread takes cores from training
#: (measured in docs/benchmarks.md).
WriterKind = Literal["auto", "sync", "deferred", "async"]


@dataclass(frozen=True)
class CheckpointSettings:
    """How a study's trials checkpoint (``hpo.checkpointing``), the same for every trial.

    What a run adds once its model is built (metric, architecture, config hash) makes these
    :class:`CheckpointOptions`; see :class:`~.checkpointer.RunCheckpoints`.
    """

    policy: RetentionPolicy = field(default_factory=RetentionPolicy)
    mode: CheckpointMode = "write"
    writer: WriterKind = "auto"

    def __post_init__(self) -> None:
        _check_mode_and_writer(self.mode, self.writer)


@dataclass(frozen=True)
class CheckpointOptions:
    """How one trial checkpoints.

    ``architecture`` is the model's signature (``architecture_signature``): loads refuse a
    checkpoint written for another architecture. ``config_hash`` identifies the training
    configuration, so a resume can refuse a checkpoint of a different run.
    """

    metric_name: str
    policy: RetentionPolicy = field(default_factory=RetentionPolicy)
    mode: CheckpointMode = "write"
    writer: WriterKind = "auto"
    architecture: Mapping[str, Any] | None = None
    config_hash: str = ""
    code_version: str = field(default_factory=code_version)
    watch_disk: bool = True

    def __post_init__(self) -> None:
        if not self.metric_name:
            raise MetricNotFoundError("metric_name must name the optimization metric")
        _check_mode_and_writer(self.mode, self.writer)


def _check_mode_and_writer(mode: str, writer: str) -> None:
    if mode not in ("write", "disabled", "dry_run"):
        raise ValueError(f"hpo.checkpointing.mode must be write, disabled or dry_run, got {mode!r}")
    if writer not in ("auto", "sync", "deferred", "async"):
        raise ValueError(
            f"hpo.checkpointing.writer must be auto, sync, deferred or async, got {writer!r}"
        )
