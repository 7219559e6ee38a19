"""Open a run's checkpointing: the settings' mode picks the implementation, here and only here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mental_health_hpo.checkpointing._manager import CheckpointManager
from mental_health_hpo.checkpointing._manifest import MetricRecord
from mental_health_hpo.checkpointing._null import DisabledCheckpoints, DryRunCheckpoints
from mental_health_hpo.checkpointing._options import CheckpointOptions, CheckpointSettings
from mental_health_hpo.checkpointing._protocol import Checkpointer
from mental_health_hpo.checkpointing._writers import SnapshotPool
from mental_health_hpo.workspace.storage import Storage


@dataclass(frozen=True)
class RunCheckpoints:
    """One run's checkpoints as its caller decides them: the folder and the settings.

    The trainer opens them into a :class:`Checkpointer` once its model is built, adding what
    only the run knows: the metric, the architecture signature (which needs the built model,
    and building it belongs to the trainer, after seeding) and the config hash. Why not hand the
    trainer an open ``Checkpointer``: it would have to be opened before the model exists, so
    without the architecture guard on loads. :meth:`disabled` is the trainer's default: metrics
    still flow through the same journal, nothing is written, nothing resumes.
    """

    #: The run's checkpoints folder, or a :class:`Storage` (a trial in a bucket); None: none.
    directory: Path | Storage | None
    settings: CheckpointSettings = field(default_factory=CheckpointSettings)
    snapshot_pool: SnapshotPool | None = None
    #: The worker's lease check (a study's trial): no commit once another worker took it over.
    still_owner: Callable[[], bool] | None = None

    def __post_init__(self) -> None:
        if self.directory is None and self.settings.mode != "disabled":
            raise ValueError(
                f"checkpoint mode {self.settings.mode!r} needs a directory; "
                "use RunCheckpoints.disabled() to train without checkpoints"
            )

    @classmethod
    def disabled(cls) -> RunCheckpoints:
        """Train without checkpoints (evaluation's fallback, scripts, benchmarks of the loop
        alone): no folder, nothing written, metrics journaled in memory."""
        return cls(None, CheckpointSettings(mode="disabled"))

    def open(
        self,
        *,
        metric_name: str,
        architecture: Mapping[str, Any] | None = None,
        config_hash: str = "",
        on_commit: Callable[[MetricRecord], None] | None = None,
    ) -> Checkpointer:
        """The :class:`Checkpointer` of this run: the settings' mode picks the implementation,
        here and only here (the :class:`CheckpointManager`, or one that writes nothing).
        ``architecture`` None: loads do not check it; ``config_hash`` "": resumes do not."""
        options = CheckpointOptions(
            metric_name=metric_name,
            policy=self.settings.policy,
            mode=self.settings.mode,
            writer=self.settings.writer,
            architecture=architecture,
            config_hash=config_hash,
        )
        if options.mode == "disabled":
            return DisabledCheckpoints(options, on_commit)
        directory = self.directory if self.directory is not None else Path()
        if options.mode == "dry_run":
            return DryRunCheckpoints(directory, options, on_commit)
        return CheckpointManager(
            directory, options, on_commit=on_commit, snapshot_pool=self.snapshot_pool,
            still_owner=self.still_owner,
        )  # fmt: skip
