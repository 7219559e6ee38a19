"""The hpo node's one entry point, without Kedro: ``params:hpo`` in, the study's outputs out.

``run_worker`` is what the node calls; here it trains a tiny model for real and reports to a
tracking that records its calls, so the order of what a worker tells the tracker is checked
too. MLflow's implementation of the same calls runs in tests/pipelines/hpo.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from study_workers import RecordingTracking

from mental_health_hpo.checkpointing import CheckpointSettings, RetentionPolicy
from mental_health_hpo.hpo.coordination import Coordination
from mental_health_hpo.hpo.setup import PARAMETERS_FILE, checkpoint_settings
from mental_health_hpo.hpo.worker import run_worker

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from data_helpers import make_model_input


def _params(tiny_model_dir: Path, **checkpointing: Any) -> dict[str, Any]:
    return {
        "study": {"name": "w", "storage": "sqlite:///optuna.db", "n_trials": 2, "pruner": "none"},
        "base": {
            "model": {"encoder": str(tiny_model_dir), "max_length": 96, "stride": 24},
            "trainer": {"epochs": 2, "batch_size": 4, "max_steps_per_epoch": 2},
        },
        "search_space": {"trainer": {"seed": {"type": "int", "low": 1, "high": 9}}},
        "checkpointing": {"policy": "default", **checkpointing},
    }


class _Opener:
    """``open_tracking`` of the node, recording what it was opened with."""

    def __init__(self) -> None:
        self.tracking = RecordingTracking()
        self.opened: list[tuple[str, Path]] = []
        self.flushed = 0
        self.completed: list[float | None] = []
        tracking = self.tracking
        tracking.flush = self._flush  # type: ignore[method-assign]
        tracking.study_complete = self._complete  # type: ignore[method-assign]

    def __call__(self, name: str, coordination: Coordination, study_dir: Path) -> Any:
        self.opened.append((name, study_dir))
        return self.tracking

    def _flush(self) -> None:
        self.flushed += 1

    def _complete(self, coordination: Coordination, study_dir: Path, best: float | None) -> None:
        self.completed.append(best)


def test_a_worker_runs_the_study_and_returns_its_result(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    frames = make_model_input(4, "train", seed=3), make_model_input(2, "validation", seed=4)
    opener = _Opener()
    outputs = run_worker(*frames, {"fingerprint": "abc"}, _params(tiny_model_dir), tmp_path, opener)

    study_dir = tmp_path / "experiments" / "study_w"
    assert opener.opened == [("w", study_dir)]
    tracking = opener.tracking
    assert tracking.starts == 1 and sorted(tracking.ended) == [0, 1]
    assert [p.finished for p in tracking.progressed] == [1, 2]
    assert opener.flushed == 1 and opener.completed == [outputs.result["best"]["value"]]
    written = json.loads((study_dir / "study_result.json").read_text())
    assert written == outputs.result and written["complete"] and written["n_trials"] == 2
    best = outputs.result["best"]
    assert best["checkpoint"]["checkpoint_ids"]  # the best trial's checkpoints are named
    for checkpoint_id in best["checkpoint"]["checkpoint_ids"]:
        assert (Path(best["checkpoint"]["trial_dir"]) / "checkpoints" / checkpoint_id).is_dir()
    assert list(outputs.trials["trial_id"]) == ["trial_0000", "trial_0001"]
    assert len(outputs.plots) == 3

    again = _Opener()  # a worker started on the complete study trains nothing
    repeat = run_worker(*frames, {"fingerprint": "abc"}, _params(tiny_model_dir), tmp_path, again)
    assert repeat.result == outputs.result and again.tracking.ended == []


def test_a_dry_run_study_writes_no_checkpoint(tmp_path: Path, tiny_model_dir: Path) -> None:
    frames = make_model_input(4, "train", seed=3), make_model_input(2, "validation", seed=4)
    params = _params(tiny_model_dir, mode="dry_run")
    params["study"]["n_trials"] = 1
    outputs = run_worker(*frames, {}, params, tmp_path, _Opener())
    trial_dir = Path(outputs.result["best"]["checkpoint"]["trial_dir"])
    assert outputs.result["best"]["checkpoint"]["checkpoint_ids"] == []
    assert not (trial_dir / "checkpoints" / "manifest.json").exists()
    assert not list((trial_dir / "checkpoints").glob("ckpt-*"))


@pytest.mark.parametrize(
    ("key", "fix"),
    [
        ("enabled", "mode: disabled"),
        ("dry_run", "mode: dry_run"),
        ("async_save", "writer: async"),
        ("keep_last_n", "known: mode, writer, policy, overrides"),
    ],
)
def test_a_retired_or_unknown_checkpointing_key_names_itself_the_fix_and_the_file(
    key: str, fix: str
) -> None:
    with pytest.raises(ValueError, match=f"hpo.checkpointing.{key}") as raised:
        checkpoint_settings({key: True})
    assert fix in str(raised.value) and PARAMETERS_FILE in str(raised.value)


def test_checkpointing_parameters_become_settings() -> None:
    settings = checkpoint_settings(
        {"mode": "dry_run", "writer": "sync", "policy": "default", "overrides": {"keep_last_n": 2}}
    )
    assert settings == CheckpointSettings(
        policy=RetentionPolicy(keep_last_n=2), mode="dry_run", writer="sync"
    )
    with pytest.raises(ValueError, match=r"hpo\.checkpointing\.writer must be"):
        checkpoint_settings({"writer": "threaded"})
