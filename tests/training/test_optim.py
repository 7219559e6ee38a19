"""Layer-wise LR decay, head LR, no decay on biases/norms, and the warmup-then-decay schedule."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from mental_health_hpo.training.optim import (
    build_optimizer,
    build_param_groups,
    build_scheduler,
    linear_schedule,
    warmup_steps,
)


class _Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Linear(4, 4)
        self.LayerNorm = nn.LayerNorm(4)


class _Encoder(nn.Module):
    """Names like a Hugging Face BERT: embeddings, encoder.layer.<i>, pooler."""

    def __init__(self, layers: int = 3) -> None:
        super().__init__()
        self.embeddings = nn.Embedding(10, 4)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(_Layer() for _ in range(layers))
        self.pooler = nn.Linear(4, 4)


class _Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = _Encoder()
        self.criteria_head = nn.Linear(4, 1)


def _lr_of(groups: list[dict], model: nn.Module) -> dict[str, float]:
    by_id = {id(p): g for g in groups for p in g["params"]}
    return {n: by_id[id(p)]["lr"] for n, p in model.named_parameters()}


def test_layerwise_decay_and_head_lr() -> None:
    model = _Model()
    groups = build_param_groups(
        model, lr=1.0, head_lr=5.0, weight_decay=0.1, layerwise_lr_decay=0.5
    )
    lrs = _lr_of(groups, model)
    assert lrs["criteria_head.weight"] == 5.0
    assert lrs["encoder.pooler.weight"] == 1.0  # top of the encoder
    assert lrs["encoder.encoder.layer.2.dense.weight"] == 0.5
    assert lrs["encoder.encoder.layer.1.dense.weight"] == 0.25
    assert lrs["encoder.encoder.layer.0.dense.weight"] == 0.125
    assert lrs["encoder.embeddings.weight"] == 0.0625
    # every parameter exactly once
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_no_weight_decay_on_biases_and_norms() -> None:
    model = _Model()
    groups = build_param_groups(model, lr=1.0, weight_decay=0.1)
    by_id = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    for name, param in model.named_parameters():
        expected = 0.0 if name.endswith("bias") or "LayerNorm" in name else 0.1
        assert by_id[id(param)] == expected, name


def test_head_lr_defaults_to_lr_and_no_decay_means_flat() -> None:
    model = _Model()
    lrs = _lr_of(build_param_groups(model, lr=0.3), model)
    assert set(lrs.values()) == {0.3}


@pytest.mark.parametrize("name", ["adamw", "adam"])
def test_build_optimizer(name: str) -> None:
    optimizer = build_optimizer(_Model(), name=name, lr=1e-3, weight_decay=0.01)  # type: ignore[arg-type]
    expected = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    assert type(optimizer) is expected
    assert optimizer.defaults["fused"] is True  # CPU float params: the fused kernel
    assert not build_optimizer(_Model(), lr=1e-3, fused=False).defaults["fused"]
    with pytest.raises(ValueError, match="optimizer"):
        build_optimizer(_Model(), name="sgd", lr=1e-3)  # type: ignore[arg-type]


def test_linear_warmup_then_decay() -> None:
    factor = linear_schedule(total_steps=10, warmup=2)
    assert [factor(s) for s in range(11)] == pytest.approx(
        [0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0]
    )
    assert warmup_steps(10, 0.1) == 1
    assert warmup_steps(10, 0.0) == 0
    assert warmup_steps(3, 0.1) == 1  # rounded up: a non-zero ratio always warms up


def test_scheduler_state_is_weights_only_safe_and_resumes() -> None:
    model = _Model()
    optimizer = build_optimizer(model, lr=1.0)
    scheduler = build_scheduler(optimizer, total_steps=8, warmup_ratio=0.25)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    buffer = io.BytesIO()
    torch.save({"s": scheduler.state_dict(), "o": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    fresh_opt = build_optimizer(model, lr=1.0)
    fresh = build_scheduler(fresh_opt, total_steps=8, warmup_ratio=0.25)
    fresh_opt.load_state_dict(state["o"])
    fresh.load_state_dict(state["s"])
    assert fresh.get_last_lr() == scheduler.get_last_lr()
    optimizer.step()
    scheduler.step()
    fresh_opt.step()
    fresh.step()
    assert fresh.get_last_lr() == scheduler.get_last_lr()
