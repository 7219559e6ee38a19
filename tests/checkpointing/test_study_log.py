"""The study-retention log line: counts and bytes at INFO, whatever the study's size; the
trials' names at DEBUG. It listed every kept and pruned trial, so it grew with the study."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from mental_health_hpo.checkpointing import RetentionPolicy
from tests.checkpointing.conftest import TinyNet, save_epochs
from tests.checkpointing.support import finish, open_manager


def _finish_trial(study: Path, number: int, value: float) -> None:
    model = TinyNet()
    optimizer = torch.optim.AdamW(model.parameters())
    with open_manager(
        study / f"trial_{number:04d}" / "checkpoints",
        metric_name="f1",
        policy=RetentionPolicy(keep_best_trials=1),
        check_disk=False,
    ) as manager:
        save_epochs(manager, model, optimizer, [value])
        finish(manager)


def test_the_retention_line_does_not_grow_with_the_study(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    study = tmp_path / "study_1"
    caplog.set_level(logging.DEBUG, logger="mental_health_hpo.checkpointing")
    sizes = []
    for number in range(12):
        caplog.clear()
        _finish_trial(study, number, value=number / 100)  # each new trial is the best: one prunes
        info = [
            r.getMessage()
            for r in caplog.records
            if r.levelno == logging.INFO and "retention" in r.getMessage()
        ]
        debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
        if number == 0:
            continue  # nothing to prune yet
        assert len(info) == 1, caplog.messages
        assert "trial_" not in info[0] and "freed" in info[0], info
        assert any(f"trial_{number - 1:04d}" in message for message in debug), debug
        sizes.append(len(info[0]) - len(str(number)))
    assert max(sizes) - min(sizes) <= 8, sizes  # only the numbers' digits vary
