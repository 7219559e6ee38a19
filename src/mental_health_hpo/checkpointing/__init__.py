"""Framework-free checkpoint core: atomic, verified, retention-managed checkpoints.

Never imports kedro or mlflow; the Kedro dataset lives in ``mental_health_hpo.datasets``.
"""

from mental_health_hpo.checkpointing.async_writer import AsyncWriter
from mental_health_hpo.checkpointing.atomic import atomic_write_bytes, atomic_write_file, fsync_dir
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
    UnsafeCheckpointError,
)
from mental_health_hpo.checkpointing.manager import (
    CheckpointManager,
    SaveResult,
    check_weights_only_safe,
    validate_metric_name,
)
from mental_health_hpo.checkpointing.manifest import (
    CheckpointRecord,
    FileEntry,
    Manifest,
    MetricRecord,
    read_manifest,
)
from mental_health_hpo.checkpointing.orphans import Orphan, find_orphans, remove_orphans
from mental_health_hpo.checkpointing.policy import (
    NAMED_POLICIES,
    RetentionPolicy,
    load_policy,
    parse_size,
    policy_from_dict,
)
from mental_health_hpo.checkpointing.retention import RetentionPlan, plan_retention
from mental_health_hpo.checkpointing.signature import architecture_signature
from mental_health_hpo.checkpointing.snapshot import SnapshotPool
from mental_health_hpo.checkpointing.study import (
    CheckpointRef,
    StudyRetentionReport,
    apply_study_retention,
    find_best_checkpoints,
    ranked_checkpoints,
)
from mental_health_hpo.checkpointing.verify import LoadedCheckpoint, load_checkpoint_ref

__all__ = [
    "NAMED_POLICIES",
    "AsyncSaveError",
    "AsyncWriter",
    "CheckpointError",
    "CheckpointIntegrityError",
    "CheckpointManager",
    "CheckpointRecord",
    "CheckpointRef",
    "DiskUsage",
    "FileEntry",
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
    "SaveResult",
    "SnapshotPool",
    "StudyRetentionReport",
    "UnsafeCheckpointError",
    "apply_study_retention",
    "architecture_signature",
    "atomic_write_bytes",
    "atomic_write_file",
    "check_weights_only_safe",
    "disk_usage",
    "estimate_checkpoint_bytes",
    "estimate_retained_bytes",
    "find_best_checkpoints",
    "find_orphans",
    "fsync_dir",
    "load_checkpoint_ref",
    "load_policy",
    "parse_size",
    "plan_retention",
    "policy_from_dict",
    "preflight_check",
    "ranked_checkpoints",
    "read_manifest",
    "remove_orphans",
    "validate_metric_name",
]
