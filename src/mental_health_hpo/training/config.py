"""The trainer's settings, checked when they are built so a bad value fails before any work.

Metric names are flat: ``train_loss``, ``val_loss``, ``val_f1_macro``, ``val_evidence_f1`` and so
on. ``optimization_metric`` may be given without the ``val_`` prefix; it is always a validation
metric, and always maximised (the checkpoint core keeps the best by it).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

#: Prefix of every validation metric name.
VAL_PREFIX = "val_"


class TrainerConfig(BaseModel):
    """One configuration of the trainer: optimisation, precision, seeds, limits."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    epochs: int = Field(default=3, ge=1)
    batch_size: int = Field(default=16, ge=1)
    eval_batch_size: int = Field(default=32, ge=1)
    lr: float = Field(default=2e-5, gt=0.0)
    head_lr: float | None = Field(default=None, gt=0.0, description="None: same as lr")
    weight_decay: float = Field(default=0.01, ge=0.0)
    warmup_ratio: float = Field(default=0.1, ge=0.0, lt=1.0)
    layerwise_lr_decay: float = Field(default=1.0, gt=0.0, le=1.0)
    grad_accum_steps: int = Field(default=1, ge=1)
    max_grad_norm: float | None = Field(default=1.0, gt=0.0, description="None: no clipping")
    optimizer: Literal["adamw", "adam"] = "adamw"
    adam_eps: float = Field(default=1e-8, gt=0.0)
    mixed_precision: Literal["no", "bf16", "fp16"] = Field(
        default="no", description="autocast dtype on CUDA; ignored on CPU"
    )
    seed: int = Field(default=42, ge=0, lt=2**32)
    deterministic: bool = False
    optimization_metric: str = "val_f1_macro"
    max_steps_per_epoch: int | None = Field(
        default=None, ge=1, description="cap on optimizer steps per epoch (tiny tests, smoke runs)"
    )
    max_eval_batches: int | None = Field(default=None, ge=1)
    group_by_length: bool = True
    num_workers: int = Field(default=0, ge=0)
    device: str | None = Field(default=None, description="None: cuda when available, else cpu")
    progress_bar: bool | None = Field(default=None, description="None: only on a terminal")

    @field_validator("optimization_metric")
    @classmethod
    def _validation_metric(cls, value: str) -> str:
        name = value.strip()
        if not name:
            raise ValueError("optimization_metric must not be empty")
        if name.startswith("train_"):
            raise ValueError(
                f"optimization_metric must be a validation metric, got {value!r} "
                "(training metrics would select on the training data)"
            )
        name = name if name.startswith(VAL_PREFIX) else VAL_PREFIX + name
        if name == "val_loss":
            raise ValueError("optimization_metric is maximised; val_loss is not a valid choice")
        return name

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> TrainerConfig:
        """Build from a Kedro params dict; errors name each bad field as ``trainer.<field>``."""
        try:
            return cls.model_validate(dict(params or {}))
        except ValidationError as error:
            lines = [
                f"trainer.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                + (f" (got {e['input']!r})" if "input" in e and e["type"] != "missing" else "")
                for e in error.errors()
            ]
            raise ValueError("invalid trainer config:\n  " + "\n  ".join(lines)) from None


def check_optimization_metric(name: str, available: set[str] | frozenset[str]) -> None:
    """Fail before training when the metric will never be produced by validation."""
    if name not in available:
        known = ", ".join(sorted(m for m in available if m.startswith(VAL_PREFIX)))
        raise ValueError(
            f"trainer.optimization_metric: {name!r} is not a validation metric; choose one of: "
            f"{known}"
        )
