"""Task coupling: feed an evidence summary into the criteria decision.

``independent`` classifies from the pooled vector alone. ``coupled`` combines the pooled vector
p (B, H) with the evidence head's per-criterion summary e (B, C, H) (tokens weighted by the span
scores) so the criterion decision can look at where the evidence is:

- ``concat``: [p; e] (width 2H)     - ``add``: p + e          - ``mean``: (p + e) / 2
- ``weighted_sum``: a p + b e with learned scalars a, b (start at 1)
- ``weighted_mean``: softmax([a, b]) weighted mean of p and e
"""

from __future__ import annotations

import torch
from torch import nn

from mental_health_hpo.model.config import CouplingMethod


class Coupler(nn.Module):
    """Combines pooled (B, H) and evidence summaries (B, C, H) into (B, C, out_features)."""

    def __init__(self, method: CouplingMethod, hidden_size: int) -> None:
        super().__init__()
        self.method = method
        self.out_features = 2 * hidden_size if method == "concat" else hidden_size
        learned = method in ("weighted_sum", "weighted_mean")
        start = torch.ones(2) if method == "weighted_sum" else torch.zeros(2)
        self.weights = nn.Parameter(start) if learned else None

    def forward(self, pooled: torch.Tensor, evidence: torch.Tensor) -> torch.Tensor:
        pooled = pooled.unsqueeze(1).expand_as(evidence)
        if self.method == "concat":
            return torch.cat([pooled, evidence], dim=-1)
        if self.method == "add":
            return pooled + evidence
        if self.method == "mean":
            return (pooled + evidence) / 2
        assert self.weights is not None
        weights = self.weights if self.method == "weighted_sum" else torch.softmax(self.weights, 0)
        return weights[0] * pooled + weights[1] * evidence
