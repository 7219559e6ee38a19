"""Criteria losses (bce, weighted_bce, focal, adaptive_focal, hybrid) and the evidence span loss.

All criteria losses take logits and 0/1 targets of the same shape (B, C), apply label smoothing
(y -> y (1 - eps) + eps / 2) and return the mean over elements.

- ``focal``: BCE x (1 - p_t)^gamma (Lin et al. 2017), down-weights easy pairs.
- ``adaptive_focal``: sample-dependent gamma (Mukhoti et al. 2020, FLSD): ``ADAPTIVE_GAMMA_HARD``
  where p_t < ``ADAPTIVE_THRESHOLD`` (very wrong pairs), ``gamma`` elsewhere.
- ``hybrid``: alpha x BCE + (1 - alpha) x focal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional

from mental_health_hpo.model.config import ModelConfig

ADAPTIVE_THRESHOLD = 0.2
ADAPTIVE_GAMMA_HARD = 5.0
#: Span targets with this value (a positive pair whose evidence could not be aligned) are ignored.
IGNORE_INDEX = -100


def smooth_targets(targets: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Pull 0/1 targets towards 0.5 by ``smoothing / 2``."""
    return targets * (1.0 - smoothing) + 0.5 * smoothing


def _focal_factor(
    logits: torch.Tensor, targets: torch.Tensor, gamma: torch.Tensor | float
) -> torch.Tensor:
    probs = torch.sigmoid(logits)
    p_t = probs * targets + (1 - probs) * (1 - targets)
    return (1 - p_t).clamp(min=0.0) ** gamma


def criteria_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    config: ModelConfig,
    pos_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The criteria loss of ``config.loss``; ``pos_weight`` (C,) is used by ``weighted_bce``."""
    targets = smooth_targets(targets.to(logits.dtype), config.label_smoothing)
    weight = pos_weight if config.loss == "weighted_bce" else None
    bce = functional.binary_cross_entropy_with_logits(
        logits, targets, pos_weight=weight, reduction="none"
    )
    if config.loss in ("bce", "weighted_bce"):
        return bce.mean()
    assert config.focal_gamma is not None  # guaranteed by ModelConfig validation
    if config.loss == "adaptive_focal":
        probs = torch.sigmoid(logits).detach()
        p_t = probs * targets + (1 - probs) * (1 - targets)
        gamma = torch.where(
            p_t < ADAPTIVE_THRESHOLD,
            torch.full_like(p_t, ADAPTIVE_GAMMA_HARD),
            torch.full_like(p_t, config.focal_gamma),
        )
        return (_focal_factor(logits, targets, gamma) * bce).mean()
    focal = (_focal_factor(logits, targets, config.focal_gamma) * bce).mean()
    if config.loss == "focal":
        return focal
    assert config.hybrid_alpha is not None
    return config.hybrid_alpha * bce.mean() + (1 - config.hybrid_alpha) * focal


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the last axis, mean over targets != IGNORE_INDEX (0 when none)."""
    flat_logits = logits.reshape(-1, logits.shape[-1])
    flat_targets = targets.reshape(-1)
    losses = functional.cross_entropy(
        flat_logits, flat_targets, ignore_index=IGNORE_INDEX, reduction="sum"
    )
    count = (flat_targets != IGNORE_INDEX).sum().clamp(min=1)
    return losses / count


def span_loss(
    outputs: dict[str, torch.Tensor],
    start_positions: torch.Tensor,
    end_positions: torch.Tensor,
    sentence_targets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Evidence loss for whichever span head produced ``outputs`` (targets (B, C), 0 = null).

    biaffine: cross-entropy over the flattened T x T span matrix; sentence_reranker: over
    [null, sentences]; start/end heads: mean of the start and end cross-entropies.
    """
    if "sentence_logits" in outputs:
        if sentence_targets is None:
            raise ValueError("sentence_reranker needs 'sentence_targets' in the batch")
        return masked_cross_entropy(outputs["sentence_logits"], sentence_targets)
    if "span_logits" in outputs:
        spans = outputs["span_logits"]
        length = spans.shape[-1]
        flat = spans.reshape(*spans.shape[:2], length * length)
        ignored = (start_positions == IGNORE_INDEX) | (end_positions == IGNORE_INDEX)
        targets = torch.where(ignored, IGNORE_INDEX, start_positions * length + end_positions)
        return masked_cross_entropy(flat, targets)
    start = masked_cross_entropy(outputs["start_logits"], start_positions)
    end = masked_cross_entropy(outputs["end_logits"], end_positions)
    return (start + end) / 2


def pos_weight_from_labels(
    labels: Sequence[float] | np.ndarray,
    criteria: Sequence[str] | None = None,
    criterion_of_row: Sequence[str] | None = None,
) -> list[float]:
    """negatives / positives, per criterion when ``criterion_of_row`` is given, else one value.

    For ``weighted_bce``: ``ModelConfig(pos_weight=...)`` or ``build_model(config, pos_weight=)``.
    A criterion without positives gets 1.0.
    """
    values = np.asarray(labels, dtype=float)
    if criterion_of_row is None or criteria is None:
        return [_ratio(values)]
    rows = np.asarray(criterion_of_row)
    return [_ratio(values[rows == name]) for name in criteria]


def _ratio(values: np.ndarray) -> float:
    positives = float(values.sum())
    negatives = float(len(values) - positives)
    return negatives / positives if positives > 0 and negatives > 0 else 1.0
