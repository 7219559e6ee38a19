"""Where a run computes and at which precision: the device, the autocast dtype, batch moves.

Kept apart from the loop so training and inference pick the device and precision the same way.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from mental_health_hpo.training.config import TrainerConfig


def resolve_device(name: str | None) -> torch.device:
    """``None``: CUDA when available, else CPU."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(config: TrainerConfig, device: torch.device) -> torch.dtype | None:
    """bf16/fp16 autocast on CUDA only; CPU runs stay fp32 (reproducible, and not slower here)."""
    if device.type != "cuda" or config.mixed_precision == "no":
        return None
    return torch.bfloat16 if config.mixed_precision == "bf16" else torch.float16


def autocast(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[Any]:
    """Autocast to ``dtype`` on ``device``; ``None`` runs at full precision."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(dtype: torch.dtype | None) -> torch.amp.GradScaler | None:
    """A loss scaler for fp16 only: bf16 has fp32's range and needs none."""
    return torch.amp.GradScaler("cuda") if dtype == torch.float16 else None


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """``batch`` on ``device``; CPU batches are returned as they are (no copy)."""
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
