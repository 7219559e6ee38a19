"""Framework-free checkpoint core: atomic, verified, retention-managed checkpoints.

This is the package's face; every other module here is private (``_``-prefixed; an
import-linter contract keeps code outside the package off them), except two that are public by
job: ``publish`` (publication of the best checkpoint) and ``cleanup`` (the orphan-cleanup
command). Paths, atomic writes, hashing and the study lock are project-wide and live in
``mental_health_hpo.workspace``.

- A trial: :class:`RunCheckpoints` (a folder and the study's :class:`CheckpointSettings`) opens a
  :class:`Checkpointer` once the model is built; :func:`open_checkpoints` picks the
  implementation for :class:`CheckpointOptions` (the :class:`CheckpointManager`, or the disabled
  or dry-run one). :class:`RetentionPolicy` (:func:`load_policy`) says what a trial keeps.
- Reading: :func:`read_manifest` (its :class:`MetricRecord` journal), :func:`load_checkpoint_ref`
  into a :class:`LoadedCheckpoint`, refused unless :func:`architecture_signature` matches.
- Where a study lives: :func:`storage_at` opens the :class:`Storage` of a folder or a bucket
  prefix (every study file goes through it); a running trial's checkpoints go to
  :func:`checkpoint_store` (in a bucket: a write-behind local cache, uploaded and removed when
  the trial ends).
- A study: :class:`StudyRetention` when a trial ends; :func:`ranked_checkpoints` and
  :func:`find_best_checkpoints` pick its best (:class:`CheckpointRef`); :func:`study_peak_bytes`
  sizes it before it starts.
- The errors callers handle: :class:`CheckpointError` and the three they tell apart.

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
from mental_health_hpo.checkpointing._pressure import study_peak_bytes
from mental_health_hpo.checkpointing._protocol import Checkpointer
from mental_health_hpo.checkpointing._retention import RetentionPolicy, load_policy
from mental_health_hpo.checkpointing._study import (
    CheckpointRef,
    find_best_checkpoints,
    ranked_checkpoints,
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
    "find_best_checkpoints",
    "load_checkpoint_ref",
    "load_policy",
    "ranked_checkpoints",
    "read_manifest",
    "study_peak_bytes",
]
