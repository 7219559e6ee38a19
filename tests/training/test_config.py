"""TrainerConfig: defaults, metric-name normalisation, errors that name the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mental_health_hpo.training.config import TrainerConfig, check_optimization_metric


def test_defaults_and_metric_prefix() -> None:
    config = TrainerConfig()
    assert config.optimization_metric == "val_f1_macro"
    assert TrainerConfig(optimization_metric="evidence_f1").optimization_metric == "val_evidence_f1"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lr": 0}, "trainer.lr"),
        ({"warmup_ratio": 1.0}, "trainer.warmup_ratio"),
        ({"optimizer": "sgd"}, "trainer.optimizer"),
        ({"mixed_precision": "fp8"}, "trainer.mixed_precision"),
        ({"optimization_metric": "train_loss"}, "trainer.optimization_metric"),
        ({"optimization_metric": "loss"}, "trainer.optimization_metric"),
        ({"epochs": 0}, "trainer.epochs"),
        ({"batchsize": 4}, "trainer.batchsize"),
    ],
)
def test_bad_values_name_the_field(params: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        TrainerConfig.from_params(params)


def test_frozen() -> None:
    with pytest.raises(ValidationError):
        TrainerConfig().lr = 1.0  # type: ignore[misc]


def test_check_optimization_metric() -> None:
    check_optimization_metric("val_f1_macro", {"val_f1_macro", "train_loss"})
    with pytest.raises(ValueError, match="val_f1_macro"):
        check_optimization_metric("val_nope", {"val_f1_macro", "train_loss"})
