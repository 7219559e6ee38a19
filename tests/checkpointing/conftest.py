"""Tiny models and manager factories for the checkpoint tests (seconds, not minutes)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from mental_health_hpo.checkpointing import (
    CheckpointManager,
    RetentionPolicy,
    architecture_signature,
)
from mental_health_hpo.training.seeds import capture_rng_state
from tests.checkpointing.support import open_manager


class TinyNet(torch.nn.Module):
    """Two linear layers and a named head: enough for signatures and optimizer state."""

    def __init__(self, hidden: int = 8, out: int = 3) -> None:
        super().__init__()
        self.encoder = torch.nn.Linear(4, hidden)
        self.head = torch.nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.encoder(x)))


HEADS = {"head": "linear"}


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    optimizer.zero_grad()
    model(torch.randn(5, 4)).pow(2).mean().backward()
    optimizer.step()


def training_state(optimizer: torch.optim.Optimizer, epoch: int) -> dict[str, Any]:
    return {"optimizer": optimizer.state_dict(), "rng": capture_rng_state(), "epoch": epoch}


@pytest.fixture
def tiny() -> tuple[TinyNet, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = TinyNet()
    return model, torch.optim.AdamW(model.parameters(), lr=0.01)


@pytest.fixture
def make_manager(tmp_path: Path) -> Callable[..., CheckpointManager]:
    """Factory: a manager over ``tmp_path/study_1/trial_0/checkpoints``, with the production
    writer (``auto``) by default."""
    managers: list[CheckpointManager] = []

    def factory(**kwargs: Any) -> CheckpointManager:
        kwargs.setdefault("directory", tmp_path / "study_1" / "trial_0" / "checkpoints")
        kwargs.setdefault("metric_name", "f1")
        kwargs.setdefault("policy", RetentionPolicy())
        kwargs.setdefault("architecture", architecture_signature(TinyNet(), HEADS))
        kwargs.setdefault("async_save", False)
        kwargs.setdefault("check_disk", False)
        manager = open_manager(kwargs.pop("directory"), **kwargs)
        managers.append(manager)
        return manager

    yield factory
    for manager in managers:
        manager.close()


def save_epochs(
    manager: CheckpointManager,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    values: list[float],
    start: int = 0,
) -> None:
    """One train step + save per value; the metric of epoch i is values[i]. Waits for the last
    save to commit (the production writer commits on a thread), so callers see it."""
    for offset, value in enumerate(values):
        epoch = start + offset
        train_step(model, optimizer)
        manager.save(
            epoch=epoch,
            step=(epoch + 1) * 10,
            metrics={"f1": value, "loss": 1.0 - value},
            weights=model.state_dict(),
            training_state=training_state(optimizer, epoch),
        )
    manager.flush()
