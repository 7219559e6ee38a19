"""The MLflow runs of every pipeline are tagged with the runner's class name, never an object
repr: data_ingest, hpo and evaluate through a real KedroSession given a runner instance, as
``kedro run`` gives one (hooks.RunnerNameHooks)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import run_pipeline
from kedro.runner import SequentialRunner
from mlflow.tracking import MlflowClient

OBJECT_REPR = re.compile(r"object at 0x[0-9a-fA-F]+")


@pytest.mark.slow
def test_no_run_of_any_pipeline_is_tagged_with_an_object_repr(
    kedro_project: Path, tiny_model_dir: Path
) -> None:
    params = {
        "data_ingest": {"source": {"synthetic": {"n_posts": 40}}},
        "hpo": {
            "study": {"n_trials": 1, "pruner": "none", "name": "tags"},
            "base": {
                "model": {"encoder": str(tiny_model_dir)},
                "trainer": {"epochs": 1, "batch_size": 8},
            },
        },
    }
    for pipeline in ("data_ingest", "hpo", "evaluate"):
        run_pipeline(kedro_project, pipeline, params, runner=SequentialRunner())

    client = MlflowClient(tracking_uri=f"sqlite:///{kedro_project / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=1000)
    sessions = {}
    for run in runs:
        reprs = {k: v for k, v in run.data.tags.items() if OBJECT_REPR.search(v)}
        assert not reprs, (run.info.run_name, reprs)
        if "kedro_command" in run.data.tags:  # kedro-mlflow's run of one session
            sessions[run.info.run_name] = run.data.tags.get("runner")
    assert sessions == dict.fromkeys(("data_ingest", "hpo", "evaluate"), "SequentialRunner")
