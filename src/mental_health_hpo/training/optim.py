"""Optimizer with layer-wise learning-rate decay and a head learning rate; warmup-then-decay;
and :class:`Optimization`, the three that one optimizer step moves together.

Layer-wise decay gives the encoder's lower layers smaller steps (they hold general features worth
keeping) and the freshly initialised heads their own, usually larger, learning rate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from mental_health_hpo.training.config import TrainerConfig
from mental_health_hpo.training.devices import grad_scaler

#: ``encoder.layer.3.`` (BERT), ``layers.3.`` (many others), ``block.3.`` (T5).
_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layer|layers|block|h)\.(\d+)\.")
_EMBEDDINGS = re.compile(r"(?:^|\.)(?:embeddings|embed_tokens|wte|wpe|word_embeddings)(?:\.|$)")


@dataclass(frozen=True)
class GroupSpec:
    """How one parameter is optimised: which group, at which learning rate and weight decay."""

    group: str
    lr: float
    weight_decay: float


def _is_encoder(name: str, encoder_prefix: str | None) -> bool:
    if encoder_prefix is not None:
        return name.startswith(encoder_prefix)
    return bool(_LAYER_INDEX.search(name) or _EMBEDDINGS.search(name))


def _no_decay(name: str, param: torch.Tensor) -> bool:
    """Biases and norm weights (every 1-D tensor) are not decayed, as in BERT's recipe."""
    return param.ndim < 2 or name.endswith(".bias")


def encoder_depth(names: Iterable[str], encoder_prefix: str | None) -> int:
    """Number of transformer layers, read from parameter names (0 when none are numbered)."""
    indices = [
        int(m.group(1))
        for n in names
        if _is_encoder(n, encoder_prefix) and (m := _LAYER_INDEX.search(n))
    ]
    return max(indices) + 1 if indices else 0


def param_spec(
    name: str,
    param: torch.Tensor,
    *,
    lr: float,
    head_lr: float,
    weight_decay: float,
    layerwise_lr_decay: float,
    num_layers: int,
    encoder_prefix: str | None,
) -> GroupSpec:
    """Learning rate and decay of one parameter.

    Depth 0 is the embeddings, ``i + 1`` the i-th layer, ``num_layers + 1`` the rest of the
    encoder (pooler, final norm) which gets ``lr``; each depth below the top is multiplied by
    ``layerwise_lr_decay`` once more. Parameters outside the encoder are the heads.
    """
    decay = 0.0 if _no_decay(name, param) else weight_decay
    suffix = "no_decay" if decay == 0.0 else "decay"
    if not _is_encoder(name, encoder_prefix):
        return GroupSpec(f"head.{suffix}", head_lr, decay)
    if _EMBEDDINGS.search(name):
        depth = 0
    elif match := _LAYER_INDEX.search(name):
        depth = int(match.group(1)) + 1
    else:
        depth = num_layers + 1
    scale = layerwise_lr_decay ** (num_layers + 1 - depth)
    return GroupSpec(f"encoder.{depth}.{suffix}", lr * scale, decay)


def build_param_groups(
    model: nn.Module,
    *,
    lr: float,
    head_lr: float | None = None,
    weight_decay: float = 0.0,
    layerwise_lr_decay: float = 1.0,
    encoder_prefix: str | None = "encoder.",
) -> list[dict[str, Any]]:
    """Parameter groups in a stable order (by first appearance), one per (depth, decay) pair.

    ``encoder_prefix`` names the encoder submodule; with ``None`` encoder parameters are found by
    their names (embeddings, numbered layers). When no parameter has the prefix, names decide.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if encoder_prefix is not None and not any(n.startswith(encoder_prefix) for n, _ in named):
        encoder_prefix = None
    num_layers = encoder_depth((n for n, _ in named), encoder_prefix)
    groups: dict[str, dict[str, Any]] = {}
    for name, param in named:
        spec = param_spec(
            name,
            param,
            lr=lr,
            head_lr=lr if head_lr is None else head_lr,
            weight_decay=weight_decay,
            layerwise_lr_decay=layerwise_lr_decay,
            num_layers=num_layers,
            encoder_prefix=encoder_prefix,
        )
        group = groups.setdefault(
            spec.group,
            {"params": [], "lr": spec.lr, "weight_decay": spec.weight_decay, "name": spec.group},
        )
        group["params"].append(param)
    return list(groups.values())


def build_optimizer(
    model: nn.Module,
    *,
    name: Literal["adamw", "adam"] = "adamw",
    lr: float,
    head_lr: float | None = None,
    weight_decay: float = 0.0,
    layerwise_lr_decay: float = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    encoder_prefix: str | None = "encoder.",
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    """AdamW (decoupled decay) or Adam (L2 decay in the gradient) over the groups above.

    ``fused=None`` picks the fused kernel when every parameter allows it: on CPU the default
    per-tensor loop is ~20x slower and dominated small-model steps (the HF ``Trainer`` also
    defaults to fused AdamW). The fused kernel is deterministic too.
    """
    if name not in ("adamw", "adam"):
        raise ValueError(f"optimizer must be 'adamw' or 'adam', got {name!r}")
    groups = build_param_groups(
        model,
        lr=lr,
        head_lr=head_lr,
        weight_decay=weight_decay,
        layerwise_lr_decay=layerwise_lr_decay,
        encoder_prefix=encoder_prefix,
    )
    use_fused = fused if fused is not None else fused_supported(model)
    kind = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return kind(groups, lr=lr, betas=betas, eps=eps, fused=use_fused or None)


#: Devices with a fused Adam(W) kernel in torch 2.x.
_FUSED_DEVICES = ("cpu", "cuda", "xpu", "mps")


def fused_supported(model: nn.Module) -> bool:
    """True when every trainable parameter is a floating tensor on a device with fused Adam."""
    params = [p for p in model.parameters() if p.requires_grad]
    return bool(params) and all(
        p.is_floating_point() and p.device.type in _FUSED_DEVICES for p in params
    )


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    """Warmup length in optimizer steps, rounded up so a non-zero ratio always warms up."""
    if not 0.0 <= warmup_ratio < 1.0:
        raise ValueError(f"warmup_ratio must be in [0, 1), got {warmup_ratio}")
    return min(total_steps, int(-(-total_steps * warmup_ratio // 1)))


def linear_schedule(total_steps: int, warmup: int) -> LambdaLRFactor:
    """The factor of :func:`build_scheduler`, exposed for tests and plots."""
    return LambdaLRFactor(total_steps, warmup)


class LambdaLRFactor:
    """Linear warmup from 0 to 1 over ``warmup`` steps, then linear decay to 0 at ``total``.

    Same curve as Hugging Face's ``get_linear_schedule_with_warmup``. A class rather than a
    closure so the scheduler's ``state_dict`` stays plain data (weights_only-safe).
    """

    def __init__(self, total: int, warmup: int) -> None:
        self.total = max(1, total)
        self.warmup = warmup

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return step / max(1, self.warmup)
        return max(0.0, (self.total - step) / max(1, self.total - self.warmup))


def build_scheduler(
    optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_ratio: float
) -> LambdaLR:
    """Linear warmup then linear decay, stepped once per optimizer step."""
    factor = linear_schedule(total_steps, warmup_steps(total_steps, warmup_ratio))
    return LambdaLR(optimizer, lr_lambda=factor)


@dataclass
class Optimization:
    """Optimizer, schedule and fp16 loss scaler of one run, stepped together once per update.

    One object so the loop and the checkpoint handle them as a unit: a step that moved the
    optimizer but not the schedule (or the scaler) would resume onto another learning rate.
    """

    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler
    scaler: torch.amp.GradScaler | None = None
    max_grad_norm: float | None = None

    @classmethod
    def build(
        cls,
        net: nn.Module,
        config: TrainerConfig,
        total_steps: int,
        amp_dtype: torch.dtype | None,
    ) -> Optimization:
        """The optimizer and schedule of ``config`` over ``total_steps`` updates."""
        optimizer = build_optimizer(
            net,
            name=config.optimizer,
            lr=config.lr,
            head_lr=config.head_lr,
            weight_decay=config.weight_decay,
            layerwise_lr_decay=config.layerwise_lr_decay,
            eps=config.adam_eps,
        )
        scheduler = build_scheduler(
            optimizer, total_steps=total_steps, warmup_ratio=config.warmup_ratio
        )
        return cls(optimizer, scheduler, grad_scaler(amp_dtype), config.max_grad_norm)

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradients of ``loss``, scaled first under fp16."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, net: nn.Module) -> None:
        """Clip (on unscaled gradients), update, advance the schedule, clear the gradients."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), self.max_grad_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    @property
    def lr(self) -> float:
        """The learning rate of the first group (the encoder's top layer, or the only group)."""
        return float(self.scheduler.get_last_lr()[0])
