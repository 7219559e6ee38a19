"""Criteria-matching heads: a feature vector -> one logit per criterion.

Each head maps (..., in_features) -> (..., num_labels), so the same head serves the independent
mode (B, D) and the coupled mode (B, C, D) where each criterion has its own evidence-aware input.
"""

from __future__ import annotations

import torch
from torch import nn

from mental_health_hpo.model.config import CriteriaHead
from mental_health_hpo.model.pooling import make_activation


class LinearHead(nn.Module):
    """Dropout + one linear layer: the baseline."""

    def __init__(self, in_features: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, num_labels))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class MLPHead(nn.Module):
    """One hidden layer: a little non-linearity on top of the pooled vector."""

    def __init__(
        self, in_features: int, num_labels: int, hidden: int, dropout: float, activation: str
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(in_features, hidden),
            make_activation(activation),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_labels),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class ResidualMLPHead(nn.Module):
    """A residual bottleneck block with LayerNorm, then a linear classifier: stable when deep."""

    def __init__(
        self, in_features: int, num_labels: int, hidden: int, dropout: float, activation: str
    ) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Linear(in_features, hidden),
            make_activation(activation),
            nn.Dropout(dropout),
            nn.Linear(hidden, in_features),
        )
        self.norm = nn.LayerNorm(in_features)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(in_features, num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.norm(features + self.block(features))))


class GatedHead(nn.Module):
    """A gated linear unit (value * sigmoid(gate)): lets the head switch features off per input."""

    def __init__(
        self, in_features: int, num_labels: int, hidden: int, dropout: float, activation: str
    ) -> None:
        super().__init__()
        self.value = nn.Linear(in_features, hidden)
        self.gate = nn.Linear(in_features, hidden)
        self.activation = make_activation(activation)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        features = self.dropout(features)
        gated = self.activation(self.value(features)) * torch.sigmoid(self.gate(features))
        return self.classifier(self.dropout(gated))


class MultiSampleDropoutHead(nn.Module):
    """Mean of the logits of ``samples`` dropout masks sharing one classifier: faster to train."""

    def __init__(self, in_features: int, num_labels: int, dropout: float, samples: int) -> None:
        super().__init__()
        self.dropouts = nn.ModuleList(nn.Dropout(dropout) for _ in range(samples))
        self.classifier = nn.Linear(in_features, num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = [self.classifier(dropout(features)) for dropout in self.dropouts]
        return torch.stack(logits, dim=0).mean(dim=0)


def build_criteria_head(
    kind: CriteriaHead,
    in_features: int,
    num_labels: int,
    *,
    hidden: int,
    dropout: float,
    activation: str,
    samples: int = 5,
) -> nn.Module:
    """The criteria head named in ``ModelConfig.criteria_head``."""
    if kind == "linear":
        return LinearHead(in_features, num_labels, dropout)
    if kind == "mlp":
        return MLPHead(in_features, num_labels, hidden, dropout, activation)
    if kind == "mlp_residual":
        return ResidualMLPHead(in_features, num_labels, hidden, dropout, activation)
    if kind == "gated":
        return GatedHead(in_features, num_labels, hidden, dropout, activation)
    if kind == "multi_sample_dropout":
        return MultiSampleDropoutHead(in_features, num_labels, dropout, samples)
    raise ValueError(f"criteria_head: unknown {kind!r}")
