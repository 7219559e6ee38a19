"""The runner's side of the failure cases: validate first, stop on a full disk, a killed study
is the same study, a timed-out trial keeps its best value, no result without a completed trial."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from mental_health_hpo.checkpointing import (
    InsufficientDiskSpaceError,
    RetentionPolicy,
    StudyRetention,
)
from mental_health_hpo.hpo.coordination import coordination_for
from mental_health_hpo.hpo.objective import TrainingObjective
from mental_health_hpo.hpo.preflight import StudyConfigError, validate_before_first_trial
from mental_health_hpo.hpo.results import NoCompletedTrialError, study_result
from mental_health_hpo.hpo.runner import StudyRunner, StudyStoppedError, TrialContext, TrialStopped
from mental_health_hpo.hpo.trial_folder import TrialFolder
from mental_health_hpo.workspace.locks import FileStudyLock

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from data_helpers import make_model_input
from study_workers import study_setup

SPACE_PARAMS = {
    "x": {"type": "float", "low": 0.0, "high": 1.0},
    "y": {"type": "categorical", "choices": ["a", "b", "c"]},
}


def _score(context: TrialContext) -> float:
    return context.sampled["x"] * (2.0 if context.sampled["y"] == "b" else 1.0)


@pytest.mark.parametrize(
    "base,key",
    [
        ({"trainer": {"optimization_metric": "val_no_such_metric"}}, "optimization_metric"),
        ({"trainer": {"epochs": 0}}, "epochs"),
        ({"model": {"encoder": "no-such-org/no-such-encoder"}}, "hpo.base.model.encoder"),
    ],
)
def test_what_would_fail_every_trial_fails_before_the_first(base: dict, key: str) -> None:
    with pytest.raises(StudyConfigError, match=key):
        validate_before_first_trial(base)


def test_a_full_disk_stops_the_study_and_leaves_the_trial_to_resume(tmp_path: Path) -> None:
    setup = study_setup(tmp_path, space=SPACE_PARAMS, name="disk", n_trials=3)
    study = setup.open({}, tmp_path)
    calls: list[int] = []

    def objective(context: TrialContext) -> float:
        calls.append(context.trial.number)
        raise InsufficientDiskSpaceError("no space left for the next checkpoint")

    with pytest.raises(StudyStoppedError, match="disk is full"):
        setup.runner(study, objective).run()
    assert calls == [0]  # no further trial started, none failed
    assert [t.state for t in study.trials] == [TrialState.RUNNING]
    again = setup.open({}, tmp_path)
    result = setup.runner(again, _score).run()
    assert result.resumed == [0] and result.ran == [1, 2]


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_a_study_killed_many_times_ends_as_an_unbroken_one(tmp_path: Path, sampler: str) -> None:
    n = 6

    def worker(name: str, n_trials: int) -> tuple[optuna.Study, StudyRunner]:
        setup = study_setup(
            tmp_path, space=SPACE_PARAMS, name=name, n_trials=n_trials, sampler=sampler, seed=7
        )
        study = setup.open({}, tmp_path)
        return study, setup.runner(study, _score)

    unbroken, runner = worker("whole", n)
    runner.run()
    for stop_at in range(1, n + 1):  # a new process after every trial, as after a kill
        broken, runner = worker("broken", stop_at)
        runner.run()
    assert [t.params for t in broken.trials] == [t.params for t in unbroken.trials]
    assert broken.best_value == unbroken.best_value


def test_a_timed_out_trial_keeps_its_best_value_and_can_be_best(tmp_path: Path) -> None:
    setup = study_setup(tmp_path, space=SPACE_PARAMS, name="slow", n_trials=1, trial_timeout_s=1e-6)
    study = setup.open({}, tmp_path)

    def objective(context: TrialContext) -> float:
        reason = context.should_stop(0.7, 0)
        assert reason is not None and "timed out" in reason
        raise TrialStopped(reason, 0.7)

    setup.runner(study, objective).run()
    trial = study.trials[0]
    assert trial.state is TrialState.COMPLETE and trial.value == 0.7
    assert trial.user_attrs["end_reason"] == "timed out at epoch 0"
    assert study.best_trial.number == 0
    assert study.metric_names == ["val_f1_macro"]  # what optuna-dashboard shows


class TickingClock:
    """A clock that moves one second each time it is read: a deadline of ``t`` seconds passes
    at a known look, however fast or loaded the machine is."""

    def __init__(self) -> None:
        self.now = -1.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.mark.parametrize(
    ("timeout_s", "state", "reason"),
    [
        # Looks: trial start (0), step 3 (1), end of epoch 0 (2), step 6 in epoch 1 (3).
        (2.5, TrialState.COMPLETE, "timed out in epoch 1 at step 6; best of 1 full epoch(s) kept"),
        # Past the deadline at step 3: no epoch ended, so there is no value to report.
        (0.5, TrialState.FAIL, "timed out in epoch 0 at step 3, before its first epoch ended"),
    ],
)
def test_a_trial_timed_out_inside_an_epoch_keeps_the_best_of_its_full_epochs(
    tmp_path: Path, tiny_model_dir: Path, timeout_s: float, state: TrialState, reason: str
) -> None:
    setup = study_setup(
        tmp_path,
        space={"trainer": {"seed": {"type": "int", "low": 1, "high": 9}}},
        base={
            "model": {"encoder": str(tiny_model_dir), "max_length": 96, "stride": 24},
            "trainer": {
                "epochs": 3, "batch_size": 2, "max_steps_per_epoch": 4, "progress_bar": False,
            },
        },
        name="slow", n_trials=1, pruner="none",
        trial_timeout_s=timeout_s, trial_timeout_check_every_steps=3,
    )  # fmt: skip
    objective = TrainingObjective(
        make_model_input(4, "train", seed=3),
        make_model_input(2, "validation", seed=4),
        setup.base,
        setup.checkpointing,
    )
    study = setup.open({}, tmp_path)
    study_dir = setup.study_dir
    runner = setup.runner(study, objective)
    runner.clock = TickingClock()
    runner.run()

    trial = study.trials[0]
    assert trial.state is state
    assert trial.user_attrs["end_reason"].startswith(reason)
    record = TrialFolder.of(study_dir, 0).read()
    if state is TrialState.COMPLETE:  # the value of epoch 0, eligible to be the study's best
        assert trial.value == record["best_value"] and record["best_epoch"] == 0
        assert study.best_trial.number == 0
    else:
        assert trial.value is None and record["best_value"] is None
        assert record["state"] == "failed" and "before its first epoch" in record["error"]


def test_a_study_without_a_completed_trial_has_no_result(tmp_path: Path) -> None:
    setup = study_setup(tmp_path, space=SPACE_PARAMS, name="none", n_trials=2)
    study, config = setup.open({}, tmp_path), setup.config

    def objective(context: TrialContext) -> float:
        raise RuntimeError("CUDA out of memory")

    setup.runner(study, objective).run()
    assert [t.user_attrs["end_reason"][:6] for t in study.trials] == ["failed"] * 2
    with pytest.raises(NoCompletedTrialError, match=r"no completed trial.*2 x failed"):
        study_result(
            study,
            config,
            setup.study_dir,
            "val_f1_macro",
            coordination_for(config, tmp_path),
            StudyRetention(
                tmp_path / "study_none",
                RetentionPolicy(),
                "val_f1_macro",
                FileStudyLock(tmp_path / "study_none"),
            ),
        )
    assert not (setup.study_dir / "study_result.json").exists()
