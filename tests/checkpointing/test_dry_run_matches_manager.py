"""A dry run plans exactly the checkpoints a real run writes: the same epochs are due.

The dry run once copied the manager's "is this epoch due" rule and drifted from it (it lacked
"an epoch before the last one saved is due", which a resume that replays epochs relies on).
These tests drive both implementations through the same epochs and compare what each saves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mental_health_hpo.checkpointing import RetentionPolicy

from .conftest import train_step, training_state

#: Epochs as a trainer may present them: a gap under min_interval_epochs, then a replay of
#: earlier epochs (a run resumed from an earlier checkpoint in the same folder).
EPOCHS = [0, 1, 2, 3, 4, 5, 2, 3, 4, 6]


def _saved_epochs(
    manager: Any, tiny: Any, epochs: list[int], force_last: bool, first_step: int = 10
) -> list[int]:
    """The epochs ``manager`` checkpoints (the others only journal their metrics)."""
    model, optimizer = tiny
    saved = []
    for index, epoch in enumerate(epochs):
        train_step(model, optimizer)
        result = manager.save(
            epoch=epoch,
            step=first_step + index * 10,
            metrics={"f1": 0.1 * (index % 4), "loss": 1.0},
            weights=model.state_dict(),
            training_state=training_state(optimizer, epoch),
            force=force_last and index == len(epochs) - 1,
        )
        if result.checkpoint_id is not None:
            saved.append(epoch)
    return saved


@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        (1, EPOCHS),
        (2, [0, 2, 4, 2, 4, 6]),  # the replayed 2 comes before the last saved 4: due
        (3, [0, 3, 2, 6]),  # 6 is forced (a run's last epoch)
    ],
)
def test_the_dry_run_saves_the_epochs_the_manager_saves(
    tmp_path: Path, make_manager: Any, tiny: Any, interval: int, expected: list[int]
) -> None:
    policy = RetentionPolicy(keep_last_n=10, keep_best_k=2, min_interval_epochs=interval)
    real = make_manager(directory=tmp_path / "study_1" / "trial_0" / "checkpoints", policy=policy)
    dry = make_manager(directory=tmp_path / "study_1" / "trial_1" / "checkpoints", policy=policy,
                       dry_run=True)  # fmt: skip
    written = _saved_epochs(real, tiny, EPOCHS, force_last=True)
    planned = _saved_epochs(dry, tiny, EPOCHS, force_last=True)
    assert written == expected
    assert planned == written


def test_a_dry_run_on_a_written_folder_plans_what_a_resumed_manager_writes(
    tmp_path: Path, make_manager: Any, tiny: Any
) -> None:
    """Both start from the same committed manifest (epochs 0-4) and see epoch 2 again."""
    policy = RetentionPolicy(keep_last_n=10, keep_best_k=2, min_interval_epochs=2)
    directory = tmp_path / "study_1" / "trial_0" / "checkpoints"
    first = make_manager(directory=directory, policy=policy)
    assert _saved_epochs(first, tiny, [0, 1, 2, 3, 4], force_last=False) == [0, 2, 4]
    first.close()
    dry = make_manager(directory=directory, policy=policy, dry_run=True)
    planned = _saved_epochs(dry, tiny, [2, 3, 4, 5, 6], force_last=False, first_step=100)
    resumed = make_manager(directory=directory, policy=policy)
    written = _saved_epochs(resumed, tiny, [2, 3, 4, 5, 6], force_last=False, first_step=100)
    assert planned == written == [2, 4, 6]
