from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from study_workers import RecordingTracking, study_setup

from mental_health_hpo.hpo.coordination import coordination_for
from mental_health_hpo.hpo.leases import Worker, trial_resource
from mental_health_hpo.hpo.runner import TrialContext, TrialStopped
from mental_health_hpo.hpo.search_space import SearchSpace
from mental_health_hpo.hpo.setup import StudySetup
from mental_health_hpo.hpo.study import StudyConfig, open_study
from mental_health_hpo.hpo.trial_folder import TrialFolder

SPACE = SearchSpace.from_params({"x": {"type": "float", "low": 0.0, "high": 1.0}})


def _study(tmp_path: Path, n_trials: int = 3, **kwargs) -> tuple[optuna.Study, StudySetup]:
    """A worker's setup from ``params:hpo``, and the study it opens (as production does)."""
    setup = study_setup(tmp_path, name="t", n_trials=n_trials, **kwargs)
    return setup.open({}, tmp_path), setup


def test_failing_trial_is_recorded_and_the_study_goes_on(tmp_path: Path) -> None:
    study, setup = _study(tmp_path)
    tracking = RecordingTracking()

    def objective(context: TrialContext) -> float:
        if context.trial.number == 1:
            raise RuntimeError("out of memory in trial 1")
        return context.sampled["x"]

    setup.runner(study, objective, tracking).run()
    progress = tracking.progressed
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert "out of memory in trial 1" in study.trials[1].user_attrs["error"]
    record = TrialFolder.of(setup.study_dir, 1).read()
    assert record["state"] == "failed" and "out of memory" in record["error"]
    lifecycle = [h["state"] for h in TrialFolder.of(setup.study_dir, 0).read()["history"]]
    assert lifecycle == ["queued", "preparing", "running", "finishing", "completed"]
    assert [p.finished for p in progress] == [1, 2, 3]
    assert progress[-1].line().startswith("trial 3 of 3 (100%)")


def test_pruned_trials_report_each_step_once(tmp_path: Path) -> None:
    study, setup = _study(tmp_path, n_trials=1)

    def objective(context: TrialContext) -> float:
        assert context.should_stop(0.1, 0) is None  # the first trials are never pruned
        assert context.should_stop(0.1, 0) is None  # a resumed trial replays an epoch
        raise TrialStopped("pruned at step 0", 0.1)

    setup.runner(study, objective).run()
    assert study.trials[0].state is TrialState.PRUNED
    assert study.trials[0].intermediate_values == {0: 0.1}


def test_orphaned_running_trial_is_resumed_as_the_same_trial(tmp_path: Path) -> None:
    study, setup = _study(tmp_path, n_trials=2)
    crashed = study.ask()  # a process asked for it and died (SIGKILL): RUNNING, lock free
    params = SPACE.suggest(crashed, {})
    TrialFolder.of(setup.study_dir, crashed.number).transition("running")
    seen: list[tuple[int, bool, float]] = []

    def objective(context: TrialContext) -> float:
        seen.append((context.trial.number, context.resumed, context.sampled["x"]))
        return 1.0

    fresh, setup = _study(tmp_path, n_trials=2)  # a new process opens the same study
    result = setup.runner(fresh, objective).run()
    assert result.resumed == [0] and result.ran == [1]
    assert seen[0] == (0, True, params["x"])  # same params, same folder
    assert [t.state for t in fresh.trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert len(fresh.trials) == 2


def _other_worker_holds(config: StudyConfig, tmp_path: Path, number: int) -> Worker:
    """Another worker's lease on trial ``number``, never renewed (that worker then dies)."""
    other = Worker(host="other-host", pid=1)
    store = coordination_for(config, tmp_path).leases
    assert store.acquire(trial_resource(number), other) is not None
    return other


def test_a_trial_leased_by_a_live_worker_is_left_alone_without_waiting(tmp_path: Path) -> None:
    study, setup = _study(tmp_path, n_trials=2, lease_s=30, wait_for_running=False)
    study.ask()
    _other_worker_holds(setup.config, tmp_path, 0)
    calls: list[int] = []

    def objective(context: TrialContext) -> float:
        calls.append(context.trial.number)
        return 0.5

    result = setup.runner(study, objective).run()
    assert calls == [1]
    assert study.trials[0].state is TrialState.RUNNING
    assert result.tally is not None and not result.tally.complete
    assert result.tally.status() == "study 1/2 finished, 1 running on other workers"


def test_a_dead_workers_trial_is_taken_over_once_its_lease_expires(tmp_path: Path) -> None:
    study, setup = _study(tmp_path, n_trials=2, lease_s=1.0)
    study.ask()
    _other_worker_holds(setup.config, tmp_path, 0)
    calls: list[tuple[int, bool]] = []

    def objective(context: TrialContext) -> float:
        calls.append((context.trial.number, context.resumed))
        return 0.5

    started = time.monotonic()
    result = setup.runner(study, objective).run()
    assert calls == [(1, False), (0, True)]  # the same trial 0, resumed after the expiry
    assert result.resumed == [0] and result.tally is not None and result.tally.complete
    assert time.monotonic() - started < 2 * setup.config.lease_s + 1.5
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2


def test_rerun_of_a_finished_study_adds_nothing_and_more_trials_top_it_up(tmp_path: Path) -> None:
    study, setup = _study(tmp_path, n_trials=2)
    setup.runner(study, lambda c: c.sampled["x"]).run()
    again, setup = _study(tmp_path, n_trials=2)
    assert setup.runner(again, lambda c: 0.0).run().ran == []
    more, setup = _study(tmp_path, n_trials=3)
    assert setup.runner(more, lambda c: 0.0).run().ran == [2]


def test_journal_storage_works(tmp_path: Path) -> None:
    study, setup = _study(tmp_path, n_trials=2, storage="journal:///journal/study.log")
    setup.runner(study, lambda c: c.sampled["x"]).run()
    assert (tmp_path / "journal" / "study.log").exists()
    assert len(open_study(setup.config, SPACE, tmp_path).trials) == 2


def test_the_default_sqlite_storage_opens_when_the_experiments_are_elsewhere(
    tmp_path: Path,
) -> None:
    """``sqlite:///experiments/optuna.db`` (the default) with ``experiments_dir`` on a shared
    folder: nothing else creates ``experiments/``, and the leases opened the file before the
    study did ("unable to open database file" at the first ``kedro run``)."""
    shared = tmp_path / "shared" / "experiments"
    setup = study_setup(
        tmp_path, n_trials=1, storage="sqlite:///experiments/optuna.db", experiments_dir=str(shared)
    )
    study = open_study(setup.config, SPACE, tmp_path)
    assert setup.runner(study, lambda c: c.sampled["x"]).run().ran == [0]
    assert (tmp_path / "experiments" / "optuna.db").is_file()


@pytest.mark.parametrize("field,value", [("name", "a b"), ("sampler", "cmaes"), ("n_trials", 0)])
def test_bad_study_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"hpo.study.{field}"):
        StudyConfig(**{field: value})  # type: ignore[arg-type]


def test_progress_after_every_trial_goes_to_the_study_json_log(tmp_path: Path) -> None:
    import json
    import logging

    logging.getLogger("mental_health_hpo").setLevel(logging.INFO)  # as conf/logging.yml sets it
    study, setup = _study(tmp_path, n_trials=2)
    setup.runner(study, lambda c: c.sampled["x"]).run()
    lines = (setup.study_dir / "logs" / "study.jsonl").read_text().splitlines()
    progress = [json.loads(line)["extra"]["progress"] for line in lines]
    assert [p["finished"] for p in progress] == [1, 2]
    assert all(p["n_trials"] == 2 and p["best_value"] is not None for p in progress)
    assert all(json.loads(line)["study_id"] == "t" for line in lines)


def test_best_follows_the_direction_and_a_zero_value_counts(tmp_path: Path) -> None:
    import optuna as _optuna

    from mental_health_hpo.hpo.tally import Tally

    maximize = _optuna.create_study(direction="maximize")
    for value in (-0.5, 0.0, -0.2):
        maximize.add_trial(_optuna.trial.create_trial(value=value))
    tally = Tally.of(maximize, maximize.get_trials(deepcopy=False), 3)
    assert (tally.best_value, tally.best_trial) == (0.0, 1)  # not -inf for 0.0
    minimize = _optuna.create_study(direction="minimize")
    for value in (0.3, 0.1, 0.2):
        minimize.add_trial(_optuna.trial.create_trial(value=value))
    assert Tally.of(minimize, minimize.get_trials(deepcopy=False), 3).best_trial == 1


def test_a_trial_killed_after_tell_is_finished_by_the_next_worker(tmp_path: Path) -> None:
    study, setup = _study(tmp_path, n_trials=1, lease_s=0.5)
    trial = study.ask()
    SPACE.suggest(trial, {})
    _other_worker_holds(setup.config, tmp_path, 0)  # that worker told, then died before finishing
    study.tell(trial, 0.4)
    time.sleep(0.6)
    tracking = RecordingTracking()
    result = setup.runner(study, lambda c: 1.0, tracking).run()
    assert (
        tracking.ended == [0] and tracking.starts == 1 and result.ran == [] and result.resumed == []
    )
    assert TrialFolder.of(setup.study_dir, 0).read()["state"] == "completed"
    assert coordination_for(setup.config, tmp_path).leases.expired("trial:") == []


def test_torch_threads_default_to_the_cores_shared_by_the_workers_on_this_host(
    tmp_path: Path,
) -> None:
    import os

    study, setup = _study(tmp_path, n_trials=2)
    seen: list[int | None] = []

    def objective(context: TrialContext) -> float:
        seen.append(context.torch_threads)
        if len(seen) == 1:  # a second worker starts on this host
            neighbour = Worker(pid=os.getpid())
            store = coordination_for(setup.config, tmp_path).leases
            store.acquire(f"worker:{neighbour.owner}", neighbour)
        return 0.5

    setup.runner(study, objective).run()
    cores = os.cpu_count() or 1
    assert seen == [cores, max(1, cores // 2)]
    fixed, setup = _study(tmp_path, n_trials=3, torch_threads=1)
    setup.runner(fixed, objective).run()
    assert seen[-1] == 1
