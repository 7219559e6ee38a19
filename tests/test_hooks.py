"""CleanBarsHooks: log records go around the bars for the length of a pipeline run only.
RunnerNameHooks: the runner's class name as the MLflow tag, after kedro-mlflow's hook has set
the object repr; the run params keep the repr kedro-viz reads.
SessionRunHooks: a study worker's session run carries its study and owner from its creation."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from kedro.framework.hooks import hook_impl

from mental_health_hpo import hooks
from mental_health_hpo.training import progress


@pytest.mark.parametrize("outcome", ["after_pipeline_run", "on_pipeline_error"])
def test_handlers_are_wrapped_during_a_run_and_restored_after(
    monkeypatch: pytest.MonkeyPatch, outcome: str
) -> None:
    monkeypatch.setattr(progress, "is_interactive", lambda: True)
    root = logging.getLogger()
    before = list(root.handlers)
    hook = hooks.CleanBarsHooks()
    hook.before_pipeline_run()
    try:
        assert root.handlers and all(
            isinstance(h, progress._BarSafeHandler) for h in root.handlers[: len(before)]
        )
    finally:
        getattr(hook, outcome)()
    assert root.handlers == before


@pytest.mark.parametrize(
    ("recorded", "expected"),
    [
        (
            "<kedro.runner.sequential_runner.SequentialRunner object at 0x7f3a2c1d0e50>",
            "SequentialRunner",
        ),
        ("<kedro.runner.thread_runner.ThreadRunner object at 0x10ABCDEF>", "ThreadRunner"),
        ("None", "SequentialRunner"),  # a session given no runner runs SequentialRunner
        (None, "SequentialRunner"),
        ("ParallelRunner", "ParallelRunner"),  # a name already: kept
        ("not <a repr object at 0x1> at all", "not <a repr object at 0x1> at all"),
    ],
)
def test_runner_name_replaces_an_object_repr_by_its_class_name(
    recorded: object, expected: str
) -> None:
    assert hooks.runner_name(recorded) == expected


def test_the_tag_is_overwritten_and_the_run_params_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    repr_ = "<kedro.runner.sequential_runner.SequentialRunner object at 0x7f3a2c1d0e50>"
    run_params = {"runner": repr_, "env": "local"}
    with mlflow.start_run() as run:
        mlflow.set_tag("runner", repr_)  # what kedro-mlflow's hook did just before
        hooks.RunnerNameHooks().before_pipeline_run(run_params)
    tags = mlflow.MlflowClient().get_run(run.info.run_id).data.tags
    assert tags["runner"] == "SequentialRunner"
    assert run_params["runner"] == repr_  # kedro-viz recognises a sequential run by it


def test_runner_name_hook_runs_after_kedro_mlflow_tags_the_run(kedro_project: Path) -> None:
    """In the session's own hook manager (settings.HOOKS, then the plugins' entry points),
    ours is called last: pluggy calls the implementations' list in reverse, trylast ones
    after all others."""
    from kedro.framework.session import KedroSession
    from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook

    with KedroSession.create(project_path=kedro_project) as session:
        impls = session._hook_manager.hook.before_pipeline_run.get_hookimpls()
    call_order = [type(impl.plugin) for impl in reversed(impls)]
    assert hooks.RunnerNameHooks in call_order and MlflowHook in call_order
    assert call_order.index(hooks.RunnerNameHooks) > call_order.index(MlflowHook)


def test_session_run_hook_wraps_kedro_mlflows(kedro_project: Path) -> None:
    """SessionRunHooks reads kedro-mlflow's config after kedro-mlflow stored it, and gives it the
    run id before kedro-mlflow starts the run."""
    from kedro.framework.session import KedroSession
    from kedro_mlflow.framework.hooks.mlflow_hook import MlflowHook

    with KedroSession.create(project_path=kedro_project) as session:
        relay = session._hook_manager.hook
        created = [type(i.plugin) for i in reversed(relay.after_context_created.get_hookimpls())]
        started = [type(i.plugin) for i in reversed(relay.before_pipeline_run.get_hookimpls())]
    assert created.index(hooks.SessionRunHooks) > created.index(MlflowHook)
    assert started.index(hooks.SessionRunHooks) < started.index(MlflowHook)


def test_a_study_session_run_is_born_with_its_study_and_owner(kedro_project: Path) -> None:
    """The run kedro-mlflow starts for a pipeline with the study node is the one the hook
    created with the study and owner tags; other pipelines get kedro-mlflow's own run."""
    import mlflow
    from kedro.framework.session import KedroSession

    from mental_health_hpo.tracking.abandoned import OWNER_TAG, STUDY_TAG, owner_id

    seen: list[dict[str, str]] = []

    class Spy:
        @hook_impl
        def before_node_run(self) -> None:
            run = mlflow.active_run()
            assert run is not None
            seen.append(mlflow.MlflowClient().get_run(run.info.run_id).data.tags)
            raise RuntimeError("stop here: the run's tags are what this test reads")

    params = {"hpo": {"study": {"name": "born_tagged"}}}
    for pipeline in ("hpo", "data_ingest"):
        try:
            with KedroSession.create(project_path=kedro_project, runtime_params=params) as session:
                session._hook_manager.register(Spy())
                with pytest.raises(RuntimeError, match="stop here"):
                    session.run(pipeline_names=[pipeline])
        finally:
            while mlflow.active_run():
                mlflow.end_run()
    study_run, ingest_run = seen
    assert study_run[STUDY_TAG] == "born_tagged" and study_run[OWNER_TAG] == owner_id()
    assert study_run["mlflow.runName"] == "hpo" and "kedro_command" in study_run  # kedro-mlflow's
    assert STUDY_TAG not in ingest_run and OWNER_TAG not in ingest_run
