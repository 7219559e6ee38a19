"""Open a trial's checkpointing: the options' mode picks the implementation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mental_health_hpo.checkpointing.manager import CheckpointManager
from mental_health_hpo.checkpointing.manifest import MetricRecord
from mental_health_hpo.checkpointing.null import DisabledCheckpoints, DryRunCheckpoints
from mental_health_hpo.checkpointing.options import CheckpointOptions
from mental_health_hpo.checkpointing.protocol import Checkpointer
from mental_health_hpo.checkpointing.snapshot import SnapshotPool


def open_checkpoints(
    directory: str | Path,
    options: CheckpointOptions,
    *,
    on_commit: Callable[[MetricRecord], None] | None = None,
    snapshot_pool: SnapshotPool | None = None,
) -> Checkpointer:
    """A :class:`Checkpointer` for one trial's checkpoints folder."""
    if options.mode == "disabled":
        return DisabledCheckpoints(directory, options, on_commit)
    if options.mode == "dry_run":
        return DryRunCheckpoints(directory, options, on_commit)
    return CheckpointManager(directory, options, on_commit=on_commit, snapshot_pool=snapshot_pool)
