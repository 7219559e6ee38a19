"""ReDSM5 data: sources, validation, evidence alignment, splits and fingerprints.

Framework-free: nothing here imports kedro or mlflow.
"""

from mental_health_hpo.data.alignment import AlignmentConfig, align_annotations
from mental_health_hpo.data.errors import DataConfigError, DatasetSourceError, DataValidationError
from mental_health_hpo.data.fingerprint import dataset_fingerprint
from mental_health_hpo.data.model_input import build_model_input
from mental_health_hpo.data.sources import RawReDSM5, SourceConfig, load_source
from mental_health_hpo.data.splits import (
    SplitConfig,
    assign_splits,
    check_disjoint_splits,
    require_rows,
)
from mental_health_hpo.data.synthetic import SyntheticConfig, generate_synthetic
from mental_health_hpo.data.validation import validate_raw

__all__ = [
    "AlignmentConfig",
    "DataConfigError",
    "DataValidationError",
    "DatasetSourceError",
    "RawReDSM5",
    "SourceConfig",
    "SplitConfig",
    "SyntheticConfig",
    "align_annotations",
    "assign_splits",
    "build_model_input",
    "check_disjoint_splits",
    "dataset_fingerprint",
    "generate_synthetic",
    "load_source",
    "require_rows",
    "validate_raw",
]
