"""The trainer: reproducible, guarded, stoppable, resumable without logging a step twice."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from mental_health_hpo.checkpointing import CheckpointSettings, RunCheckpoints
from mental_health_hpo.model import ModelConfig
from mental_health_hpo.training import (
    EpochResult,
    StopCheck,
    TestSplitAccessError,
    TrainerConfig,
    available_metric_names,
    evaluate,
    train,
)
from mental_health_hpo.training.config import check_optimization_metric

from .data_helpers import make_model_input

TRAIN = make_model_input(4, "train", seed=3)
VALIDATION = make_model_input(2, "validation", seed=4)


def _model_config(model_dir: Path) -> ModelConfig:
    return ModelConfig(encoder=str(model_dir), max_length=96, stride=24)


def _trainer_config(**overrides: Any) -> TrainerConfig:
    params: dict[str, Any] = {
        "epochs": 2, "batch_size": 8, "eval_batch_size": 32, "lr": 1e-3, "seed": 11,
        "progress_bar": False,
    }  # fmt: skip
    return TrainerConfig(**{**params, **overrides})


# --------------------------------------------------------------------------- config


def test_config_defaults_and_metric_prefix() -> None:
    config = TrainerConfig()
    assert config.optimization_metric == "val_f1_macro"
    assert TrainerConfig(optimization_metric="evidence_f1").optimization_metric == "val_evidence_f1"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lr": 0}, "trainer.lr"),
        ({"warmup_ratio": 1.0}, "trainer.warmup_ratio"),
        ({"optimizer": "sgd"}, "trainer.optimizer"),
        ({"mixed_precision": "fp8"}, "trainer.mixed_precision"),
        ({"optimization_metric": "train_loss"}, "trainer.optimization_metric"),
        ({"optimization_metric": "loss"}, "trainer.optimization_metric"),
        ({"epochs": 0}, "trainer.epochs"),
        ({"batchsize": 4}, "trainer.batchsize"),
    ],
)
def test_config_errors_name_the_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        TrainerConfig.from_params(params)


def test_config_is_frozen() -> None:
    with pytest.raises(ValidationError):
        TrainerConfig().lr = 1.0  # type: ignore[misc]


def test_metric_names_cover_criteria_and_evidence() -> None:
    names = available_metric_names()
    for name in (
        "val_accuracy", "val_f1_macro", "val_f1_micro", "val_precision_macro",
        "val_recall_macro", "val_macro_pr_auc", "val_f1_ANHEDONIA", "val_exact_match",
        "val_evidence_f1", "val_char_f1", "val_null_span_accuracy", "val_loss", "train_loss",
    ):  # fmt: skip
        assert name in names
    check_optimization_metric("val_evidence_f1", names)


# --------------------------------------------------------------------------- guards (fast)


def test_unknown_optimization_metric_fails_before_training() -> None:
    config = _trainer_config(optimization_metric="val_f2_macro")
    with pytest.raises(ValueError, match="val_f2_macro"):
        train(_model_config(Path("/nonexistent")), config, TRAIN, VALIDATION)


@pytest.mark.parametrize("which", ["train", "validation"])
def test_test_rows_are_refused(which: str) -> None:
    leaked = pd.concat([TRAIN if which == "train" else VALIDATION, make_model_input(1, "test")])
    frames = (leaked, VALIDATION) if which == "train" else (TRAIN, leaked)
    with pytest.raises(TestSplitAccessError, match=f"{which}_df"):
        train(_model_config(Path("/nonexistent")), _trainer_config(), *frames)


# --------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def first_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One run with checkpoints, stopped by ``on_epoch`` after epoch 0 (as Optuna pruning)."""
    directory = tmp_path_factory.mktemp("trainer") / "checkpoints"
    epochs: list[EpochResult] = []
    steps: list[int] = []

    def stop_now(epoch: EpochResult) -> bool:
        epochs.append(epoch)
        return True

    result = train(
        _model_config(tiny_model_dir),
        _trainer_config(epochs=2, max_steps_per_epoch=2),
        TRAIN,
        VALIDATION,
        checkpoints=RunCheckpoints(directory, CheckpointSettings(writer="async")),
        on_epoch=stop_now,
        on_metrics=lambda records: steps.extend(r.step for r in records),
    )
    return result, epochs, steps, directory


def test_on_epoch_true_stops_after_a_committed_epoch(first_run: Any) -> None:
    result, epochs, steps, directory = first_run
    assert result.stopped_early and result.epochs_completed == 1
    assert [e.epoch for e in epochs] == [0] and epochs[0].is_best
    assert steps == [epochs[0].step] == [result.last_logged_step]
    assert result.seeds.seed == 11 and result.seeds.as_dict()["torch_cpu"] == 11
    assert not math.isnan(result.best_metric)
    assert result.metrics.keys() >= {"train_loss", "val_loss", "val_f1_macro", "val_exact_match"}
    assert (directory / "manifest.json").exists()


def test_resume_continues_and_never_logs_a_step_twice(first_run: Any, tiny_model_dir: Path) -> None:
    first, _, first_steps, directory = first_run
    steps: list[int] = []
    result = train(
        _model_config(tiny_model_dir),
        _trainer_config(epochs=2, max_steps_per_epoch=2),
        TRAIN,
        VALIDATION,
        checkpoints=RunCheckpoints(directory),
        on_metrics=lambda records: steps.extend(r.step for r in records),
    )
    assert result.resumed_from == {"epoch": 0, "step": first.last_logged_step}
    assert result.epochs_completed == 2 and len(result.history) == 2
    assert steps == [4] and min(steps) > max(first_steps)
    assert result.last_logged_step == steps[-1]


def test_resume_with_another_config_is_refused(first_run: Any, tiny_model_dir: Path) -> None:
    from mental_health_hpo.checkpointing import IncompatibleCheckpointError

    _, _, _, directory = first_run
    config = _trainer_config(epochs=2, max_steps_per_epoch=2, lr=5e-4)
    with pytest.raises(IncompatibleCheckpointError, match="another configuration"):
        train(_model_config(tiny_model_dir), config, TRAIN, VALIDATION,
              checkpoints=RunCheckpoints(directory))  # fmt: skip


def test_a_stop_check_is_asked_every_n_steps_and_must_be_at_least_one() -> None:
    looks: list[int] = []

    def stop() -> bool:
        looks.append(1)
        return True

    check = StopCheck(stop, every_steps=3)
    assert [step for step in range(1, 10) if check.due(step)] == [3, 6, 9]
    assert len(looks) == 3  # the predicate is not asked between check steps
    with pytest.raises(ValueError, match="every_steps"):
        StopCheck(lambda: True, every_steps=0)


def test_a_stop_inside_an_epoch_drops_it_and_keeps_the_full_epochs(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """A deadline seen mid-epoch: the run ends at the first check after it, the partial epoch
    is neither validated nor committed, and the checkpoint of the last full epoch resumes."""
    looks: list[int] = []

    def out_of_time() -> bool:  # the deadline passes between its first and second look
        looks.append(len(looks) + 1)
        return len(looks) >= 2

    directory = tmp_path / "checkpoints"
    config = _trainer_config(epochs=3, batch_size=2, max_steps_per_epoch=4)
    epochs: list[EpochResult] = []
    steps: list[int] = []
    result = train(
        _model_config(tiny_model_dir),
        config,
        TRAIN,
        VALIDATION,
        checkpoints=RunCheckpoints(directory),
        on_epoch=epochs.append,
        on_metrics=lambda records: steps.extend(r.step for r in records),
        stop_check=StopCheck(out_of_time, every_steps=3),
    )
    # Looks at steps 3 (epoch 0) and 6 (epoch 1, steps 5-8): stopped at step 6, nothing after.
    assert looks == [1, 2] and result.global_step == 6
    assert result.stopped_early and result.stopped_mid_epoch
    assert [e.epoch for e in epochs] == [0] and steps == [4] == [result.last_logged_step]
    assert result.epochs_completed == 1 and len(result.history) == 1
    assert result.best_epoch == 0 and result.best_metric == epochs[0].objective
    assert result.metrics == epochs[0].metrics
    manifest = json.loads((directory / "manifest.json").read_text())
    assert [c["epoch"] for c in manifest["checkpoints"]] == [0]
    assert [m["step"] for m in manifest["history"]] == [4]

    resumed = train(_model_config(tiny_model_dir), config, TRAIN, VALIDATION,
                    checkpoints=RunCheckpoints(directory))  # fmt: skip
    assert resumed.resumed_from == {"epoch": 0, "step": 4}
    assert resumed.epochs_completed == 3 and resumed.global_step == 12
    assert not resumed.stopped_early and not resumed.stopped_mid_epoch


def test_a_stop_check_never_drops_a_fully_trained_epoch(tiny_model_dir: Path) -> None:
    looks: list[int] = []

    def always() -> bool:
        looks.append(1)
        return True

    config = _trainer_config(epochs=2, batch_size=2, max_steps_per_epoch=2)
    result = train(_model_config(tiny_model_dir), config, TRAIN, VALIDATION,
                   stop_check=StopCheck(always, every_steps=2))  # fmt: skip
    # Steps 2 and 4 end epochs 0 and 1: both are validated; the check is left to on_epoch.
    assert looks == [] and result.epochs_completed == 2 and len(result.history) == 2
    assert not result.stopped_early and result.global_step == 4


def test_the_last_epoch_keeps_no_training_state_and_a_rerun_trains_nothing(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The last epoch's checkpoint holds weights only: no resume can follow it. A run started
    again on that folder (as after a kill between the last commit and the caller's bookkeeping)
    rebuilds the result from the journal and that checkpoint, and trains no step."""
    import torch
    from safetensors.torch import load_file

    directory = tmp_path / "checkpoints"
    config = _trainer_config(epochs=3, batch_size=2, max_steps_per_epoch=2)
    first_steps: list[int] = []
    first = train(
        _model_config(tiny_model_dir), config, TRAIN, VALIDATION,
        checkpoints=RunCheckpoints(directory),
        on_metrics=lambda records: first_steps.extend(r.step for r in records),
    )  # fmt: skip
    manifest = json.loads((directory / "manifest.json").read_text())
    newest = max(manifest["checkpoints"], key=lambda r: r["step"])
    assert newest["epoch"] == 2 and newest["kind"] == "weights"
    assert set(newest["files"]) == {"model.safetensors"}
    assert not (directory / newest["id"] / "training_state.pt").exists()
    assert any(c["kind"] == "full" and c["epoch"] == 1 for c in manifest["checkpoints"])

    again_steps: list[int] = []
    again = train(
        _model_config(tiny_model_dir), config, TRAIN, VALIDATION,
        checkpoints=RunCheckpoints(directory),
        on_metrics=lambda records: again_steps.extend(r.step for r in records),
    )  # fmt: skip
    assert again.resumed_from == {"epoch": 2, "step": first.global_step}
    assert again_steps == [] and first_steps == [2, 4, 6]  # nothing trained, nothing re-logged
    assert (again.global_step, again.epochs_completed) == (first.global_step, 3)
    assert again.history == first.history and again.metrics == first.metrics
    assert (again.best_metric, again.best_epoch) == (first.best_metric, first.best_epoch)
    assert json.loads((directory / "manifest.json").read_text())["history"] == manifest["history"]
    saved = load_file(str(directory / newest["id"] / "model.safetensors"))
    for name, tensor in again.model.state_dict().items():
        torch.testing.assert_close(tensor, saved[name], rtol=0, atol=0, msg=name)


def test_same_seed_gives_equal_metrics(tiny_model_dir: Path) -> None:
    """Reproducibility: two runs with the same seed report identical metrics (no checkpoints).

    Also checks gradient accumulation: 3 batches of 4 with 3 per step are 1 optimizer step.
    """
    config = _trainer_config(epochs=1, batch_size=4, grad_accum_steps=3, max_steps_per_epoch=1)
    records: list[list[Any]] = [[], []]
    runs = [
        train(_model_config(tiny_model_dir), config, TRAIN, VALIDATION, on_metrics=out.extend)
        for out in records
    ]
    assert runs[0].history == runs[1].history
    assert [r.step for r in records[0]] == [r.step for r in records[1]] == [1]
    assert records[0][0].metrics == records[1][0].metrics
    assert runs[0].last_logged_step == 1  # journaled in memory: no checkpoint, same callbacks


def test_evaluate_reads_the_test_split_from_checkpoint_weights(
    first_run: Any, tiny_model_dir: Path
) -> None:
    _, _, _, directory = first_run
    weights = sorted(directory.glob("ckpt-*/model.safetensors"))[-1]
    test_frame = make_model_input(2, "test", seed=9)
    metrics = evaluate(_model_config(tiny_model_dir), weights, test_frame, batch_size=16)
    assert "test_f1_macro" in metrics and "test_exact_match" in metrics
