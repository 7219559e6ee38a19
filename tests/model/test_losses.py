"""Known answers for the criteria and span losses."""

from __future__ import annotations

import math

import pytest
import torch

from mental_health_hpo.model import IGNORE_INDEX, ModelConfig, pos_weight_from_labels
from mental_health_hpo.model.losses import criteria_loss, masked_cross_entropy, span_loss

LOGITS = torch.tensor([[2.0, -1.0, 0.0], [-3.0, 0.5, 4.0]])
TARGETS = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])


def bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)


def test_bce_at_zero_logits_is_log_two() -> None:
    loss = criteria_loss(torch.zeros(2, 3), TARGETS, ModelConfig())
    assert loss.item() == pytest.approx(math.log(2))


def test_focal_with_gamma_zero_is_bce_and_hybrid_alpha_one_is_bce() -> None:
    reference = bce(LOGITS, TARGETS)
    focal0 = criteria_loss(LOGITS, TARGETS, ModelConfig(loss="focal", focal_gamma=0.0))
    hybrid1 = criteria_loss(
        LOGITS, TARGETS, ModelConfig(loss="hybrid", focal_gamma=2.0, hybrid_alpha=1.0)
    )
    assert focal0.item() == pytest.approx(reference.item())
    assert hybrid1.item() == pytest.approx(reference.item())


def test_focal_down_weights_easy_pairs() -> None:
    easy = torch.tensor([[4.0]])
    one = torch.tensor([[1.0]])
    focal = criteria_loss(easy, one, ModelConfig(loss="focal", focal_gamma=2.0))
    p = torch.sigmoid(easy)
    assert focal.item() == pytest.approx(((1 - p) ** 2 * -torch.log(p)).item(), rel=1e-5)


def test_adaptive_focal_uses_the_hard_gamma_for_very_wrong_pairs() -> None:
    wrong = torch.tensor([[-3.0]])  # p_t = 0.047 < 0.2 -> gamma 5
    one = torch.tensor([[1.0]])
    loss = criteria_loss(wrong, one, ModelConfig(loss="adaptive_focal", focal_gamma=1.0))
    p = torch.sigmoid(wrong)
    assert loss.item() == pytest.approx(((1 - p) ** 5 * -torch.log(p)).item(), rel=1e-5)


def test_weighted_bce_and_label_smoothing() -> None:
    config = ModelConfig(loss="weighted_bce", pos_weight=2.0)
    weighted = criteria_loss(torch.zeros(1, 1), torch.ones(1, 1), config, torch.tensor([2.0]))
    assert weighted.item() == pytest.approx(2 * math.log(2))
    smoothed = criteria_loss(LOGITS, TARGETS, ModelConfig(label_smoothing=0.2))
    assert smoothed.item() == pytest.approx(bce(LOGITS, TARGETS * 0.8 + 0.1).item())


def test_masked_cross_entropy_ignores_and_never_divides_by_zero() -> None:
    logits = torch.tensor([[[0.0, 0.0]], [[5.0, 0.0]]])
    ignored = torch.full((2, 1), IGNORE_INDEX)
    assert masked_cross_entropy(logits, ignored).item() == 0.0
    one = torch.tensor([[0], [IGNORE_INDEX]])
    assert masked_cross_entropy(logits, one).item() == pytest.approx(math.log(2))


def test_span_loss_of_start_end_heads_is_the_mean_of_both() -> None:
    start = torch.tensor([[[0.0, 0.0, 0.0]]])
    end = torch.tensor([[[0.0, 10.0, 0.0]]])
    loss = span_loss(
        {"start_logits": start, "end_logits": end}, torch.tensor([[1]]), torch.tensor([[1]])
    )
    expected = (
        math.log(3) + torch.nn.functional.cross_entropy(end[0], torch.tensor([1])).item()
    ) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_pos_weight_from_labels() -> None:
    assert pos_weight_from_labels([1, 0, 0, 0]) == [3.0]
    weights = pos_weight_from_labels([1, 0, 0, 0, 0], ["A", "B"], ["A", "A", "B", "B", "A"])
    assert weights == [2.0, 1.0]  # B has no positives -> 1.0
