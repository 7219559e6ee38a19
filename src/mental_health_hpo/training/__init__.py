"""Training: tokenization + sliding windows, batching, seeds, optimizer/scheduler, the trainer
(:mod:`.trainer` orchestrates :mod:`.epoch_loop`, :mod:`.run_state`, :mod:`.run_checkpoints`),
inference and validation (:mod:`.inference`).

Framework-free (no kedro, no mlflow).
"""

from mental_health_hpo.training.batching import DynamicPaddingCollator, LengthGroupedSampler
from mental_health_hpo.training.config import TrainerConfig, check_optimization_metric
from mental_health_hpo.training.epoch_loop import StopCheck
from mental_health_hpo.training.features import FeatureCache, WindowFeatures, build_features
from mental_health_hpo.training.inference import (
    available_metric_names,
    evaluate,
    predict,
    predict_features,
    validate,
)
from mental_health_hpo.training.optim import build_optimizer, build_param_groups, build_scheduler
from mental_health_hpo.training.seeds import (
    SeedRecord,
    capture_rng_state,
    restore_rng_state,
    seed_everything,
    worker_init_fn,
)
from mental_health_hpo.training.split_guard import (
    TRAINING_GUARD,
    SplitGuard,
    TestSplitAccessError,
    assert_no_test_rows,
)
from mental_health_hpo.training.trainer import EpochResult, TrainResult, train
from mental_health_hpo.training.windows import (
    DecodedWindows,
    decode_window_outputs,
    merge_window_predictions,
)

__all__ = [
    "TRAINING_GUARD",
    "DecodedWindows",
    "DynamicPaddingCollator",
    "EpochResult",
    "FeatureCache",
    "LengthGroupedSampler",
    "SeedRecord",
    "SplitGuard",
    "StopCheck",
    "TestSplitAccessError",
    "TrainResult",
    "TrainerConfig",
    "WindowFeatures",
    "assert_no_test_rows",
    "available_metric_names",
    "build_features",
    "build_optimizer",
    "build_param_groups",
    "build_scheduler",
    "capture_rng_state",
    "check_optimization_metric",
    "decode_window_outputs",
    "evaluate",
    "merge_window_predictions",
    "predict",
    "predict_features",
    "restore_rng_state",
    "seed_everything",
    "train",
    "validate",
    "worker_init_fn",
]
