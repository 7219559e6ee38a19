"""Framework-free checkpoint core: atomic, verified, retention-managed checkpoints.

This is the package's face; every other module here is private (``_``-prefixed; an
import-linter contract keeps code outside the package off them), except three that are public
by job: ``publish`` (publication of the best checkpoint), and the ``cleanup`` (orphans) and
``rollback`` (a stopped trial back to an earlier checkpoint) commands.
Paths, atomic writes, hashing, the study lock and the storage seam every byte goes
through (``Storage``, ``storage_at``, ``checkpoint_store``, and ``TrialTakenOverError``, the
storage's refusal of a worker whose trial was taken over) are project-wide and live in
``mental_health_hpo.workspace``.

- A trial: :class:`RunCheckpoints` (a folder and the study's :class:`CheckpointSettings`;
  :meth:`RunCheckpoints.disabled` for none) opens a :class:`Checkpointer` once the model is
  built, its mode picking the implementation (the :class:`CheckpointManager`, which a caller
  may also build itself from :class:`CheckpointOptions`, or the disabled or dry-run one).
  :class:`RetentionPolicy` (:meth:`RetentionPolicy.load`) says what a trial keeps.
- Reading: :func:`read_manifest` (its :class:`MetricRecord` journal), :func:`load_checkpoint_ref`
  into a :class:`LoadedCheckpoint`, refused unless :func:`architecture_signature` matches.
- A study: :class:`StudyRetention` when a trial ends; :meth:`CheckpointRef.ranked` and
  :meth:`CheckpointRef.best` find its checkpoints and its best;
  :meth:`RetentionPolicy.study_peak_bytes` sizes it before it starts.
- The errors callers handle: :class:`CheckpointError` and the two they tell apart.

Never imports kedro or mlflow; the Kedro dataset lives in ``mental_health_hpo.datasets``.
"""

from mental_health_hpo.checkpointing._checkpointer import (
    RunCheckpoints,
)
from mental_health_hpo.checkpointing._errors import (
    CheckpointError,
    IncompatibleCheckpointError,
    InsufficientDiskSpaceError,
)
from mental_health_hpo.checkpointing._manager import CheckpointManager
from mental_health_hpo.checkpointing._manifest import MetricRecord, read_manifest
from mental_health_hpo.checkpointing._options import CheckpointOptions, CheckpointSettings
from mental_health_hpo.checkpointing._protocol import Checkpointer
from mental_health_hpo.checkpointing._retention import RetentionPolicy
from mental_health_hpo.checkpointing._study import (
    CheckpointRef,
)
from mental_health_hpo.checkpointing._study_retention import StudyRetention
from mental_health_hpo.checkpointing._verify import (
    LoadedCheckpoint,
    architecture_signature,
    load_checkpoint_ref,
)

__all__ = [
    "CheckpointError",
    "CheckpointManager",
    "CheckpointOptions",
    "CheckpointRef",
    "CheckpointSettings",
    "Checkpointer",
    "IncompatibleCheckpointError",
    "InsufficientDiskSpaceError",
    "LoadedCheckpoint",
    "MetricRecord",
    "RetentionPolicy",
    "RunCheckpoints",
    "StudyRetention",
    "architecture_signature",
    "load_checkpoint_ref",
    "read_manifest",
]
