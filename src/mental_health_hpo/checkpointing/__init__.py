"""Framework-free checkpoint core: atomic, verified, retention-managed checkpoints.

Never imports kedro or mlflow; the Kedro dataset lives in ``mental_health_hpo.datasets``.
"""

from mental_health_hpo.checkpointing.atomic import atomic_write_bytes, atomic_write_file, fsync_dir
from mental_health_hpo.checkpointing.checkpointer import (
    NO_CHECKPOINTS,
    RunCheckpoints,
    open_checkpoints,
)
from mental_health_hpo.checkpointing.disk import (
    DiskUsage,
    disk_usage,
    estimate_checkpoint_bytes,
    estimate_retained_bytes,
    preflight_check,
)
from mental_health_hpo.checkpointing.errors import (
    AsyncSaveError,
    CheckpointError,
    CheckpointIntegrityError,
    IncompatibleCheckpointError,
    InsufficientDiskSpaceError,
    MetricNotFoundError,
    PolicyError,
    TrialTakenOverError,
    UnsafeCheckpointError,
)
from mental_health_hpo.checkpointing.layout import StudyLayout, TrialLayout
from mental_health_hpo.checkpointing.manager import CheckpointManager
from mental_health_hpo.checkpointing.manifest import (
    CheckpointRecord,
    FileEntry,
    Manifest,
    MetricRecord,
    read_manifest,
)
from mental_health_hpo.checkpointing.null import DisabledCheckpoints, DryRunCheckpoints
from mental_health_hpo.checkpointing.options import (
    CheckpointOptions,
    CheckpointSettings,
    code_version,
)
from mental_health_hpo.checkpointing.orphans import Orphan, find_orphans, remove_orphans
from mental_health_hpo.checkpointing.policy import (
    NAMED_POLICIES,
    RetentionPolicy,
    load_policy,
    parse_size,
    policy_from_dict,
)
from mental_health_hpo.checkpointing.protocol import Checkpointer, SaveResult, validate_metric_name
from mental_health_hpo.checkpointing.retention import RetentionPlan, plan_retention
from mental_health_hpo.checkpointing.serialize import check_weights_only_safe
from mental_health_hpo.checkpointing.signature import architecture_signature
from mental_health_hpo.checkpointing.snapshot import SnapshotPool
from mental_health_hpo.checkpointing.study import (
    CheckpointRef,
    StudyRetentionReport,
    apply_study_retention,
    best_of_trial,
    find_best_checkpoints,
    ranked_checkpoints,
)
from mental_health_hpo.checkpointing.study_retention import FileStudyLock, StudyLock, StudyRetention
from mental_health_hpo.checkpointing.verify import LoadedCheckpoint, load_checkpoint_ref

__all__ = [
    "NAMED_POLICIES",
    "NO_CHECKPOINTS",
    "AsyncSaveError",
    "CheckpointError",
    "CheckpointIntegrityError",
    "CheckpointManager",
    "CheckpointOptions",
    "CheckpointRecord",
    "CheckpointRef",
    "CheckpointSettings",
    "Checkpointer",
    "DisabledCheckpoints",
    "DiskUsage",
    "DryRunCheckpoints",
    "FileEntry",
    "FileStudyLock",
    "IncompatibleCheckpointError",
    "InsufficientDiskSpaceError",
    "LoadedCheckpoint",
    "Manifest",
    "MetricNotFoundError",
    "MetricRecord",
    "Orphan",
    "PolicyError",
    "RetentionPlan",
    "RetentionPolicy",
    "RunCheckpoints",
    "SaveResult",
    "SnapshotPool",
    "StudyLayout",
    "StudyLock",
    "StudyRetention",
    "StudyRetentionReport",
    "TrialLayout",
    "TrialTakenOverError",
    "UnsafeCheckpointError",
    "apply_study_retention",
    "architecture_signature",
    "atomic_write_bytes",
    "atomic_write_file",
    "best_of_trial",
    "check_weights_only_safe",
    "code_version",
    "disk_usage",
    "estimate_checkpoint_bytes",
    "estimate_retained_bytes",
    "find_best_checkpoints",
    "find_orphans",
    "fsync_dir",
    "load_checkpoint_ref",
    "load_policy",
    "open_checkpoints",
    "parse_size",
    "plan_retention",
    "policy_from_dict",
    "preflight_check",
    "ranked_checkpoints",
    "read_manifest",
    "remove_orphans",
    "validate_metric_name",
]
