"""Pooling: one vector per window from the encoder's token states, for the criteria head."""

from __future__ import annotations

import torch
from torch import nn

from mental_health_hpo.model.config import Pooling


def make_activation(name: str) -> nn.Module:
    """The activation module named in ``ModelConfig.activation``."""
    activations: dict[str, type[nn.Module]] = {
        "gelu": nn.GELU,
        "silu": nn.SiLU,
        "relu": nn.ReLU,
        "leakyrelu": nn.LeakyReLU,
        "mish": nn.Mish,
        "tanh": nn.Tanh,
    }
    if name not in activations:
        raise ValueError(f"activation: unknown {name!r}, expected one of {sorted(activations)}")
    return activations[name]()


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``states`` (B, T, H) over the positions where ``mask`` (B, T) is set."""
    weights = mask.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class Pooler(nn.Module):
    """``cls``, ``mean``, ``attention`` (learned token weights) or ``last_2_layer_mix``.

    ``last_2_layer_mix`` mixes the last two layers with learned softmax weights, then takes the
    masked mean: it needs ``output_hidden_states=True`` (see ``needs_all_hidden_states``).
    """

    def __init__(self, kind: Pooling, hidden_size: int) -> None:
        super().__init__()
        self.kind = kind
        self.attention = nn.Linear(hidden_size, 1) if kind == "attention" else None
        self.layer_weights = nn.Parameter(torch.zeros(2)) if kind == "last_2_layer_mix" else None

    @property
    def needs_all_hidden_states(self) -> bool:
        return self.kind == "last_2_layer_mix"

    def forward(
        self,
        last_hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        all_hidden: tuple[torch.Tensor, ...] | None = None,
    ) -> torch.Tensor:
        """(B, T, H) token states + (B, T) mask -> (B, H)."""
        if self.kind == "cls":
            return last_hidden[:, 0]
        if self.kind == "mean":
            return masked_mean(last_hidden, attention_mask)
        if self.attention is not None:
            scores = self.attention(last_hidden).squeeze(-1)
            scores = scores.masked_fill(attention_mask == 0, torch.finfo(scores.dtype).min)
            weights = torch.softmax(scores, dim=-1).unsqueeze(-1)
            return (weights * last_hidden).sum(dim=1)
        assert self.layer_weights is not None
        if all_hidden is None or len(all_hidden) < 2:
            raise ValueError("pooling: last_2_layer_mix needs the encoder's hidden states")
        mix = torch.softmax(self.layer_weights, dim=0)
        mixed = mix[0] * all_hidden[-2] + mix[1] * all_hidden[-1]
        return masked_mean(mixed, attention_mask)
