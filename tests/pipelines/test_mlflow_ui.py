"""The MLflow UI shows a study's runs: a real ``mlflow server``, a real study, real Chromium.

Expected: the experiment (made before, untagged) carries ``mlflow.experimentKind:
custom_model_development`` after the hpo pipeline; the experiment page, opened as the README
says, renders the study's parent run and no GenAI overview; the parent run's page lists the
trials' runs. Chromium renders the single-page app headless (``--dump-dom`` after
``--virtual-time-budget``), so the test reads what a browser shows, not what the API returns.

MLflow 3.17.2's UI takes an experiment's kind from the browser's workflow type (the sidebar's
"GenAI / Model training" switch, or ``?workflowType=``), not from the tag: a fresh browser opens
any experiment, tagged or not, on the GenAI overview. So the page is opened as the README links
it, with ``?workflowType=machine_learning``.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_pipeline
from mlflow.tracking import MlflowClient
from servers import MlflowServer

from mental_health_hpo.tracking.study_tracking import EXPERIMENT_NAME

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
GENAI_OVERVIEW = ("Detect Issues", "Token Usage", "Tokens per Trace")


def rendered_text(url: str, profile: Path) -> str:
    """The text Chromium shows for ``url`` once the app has rendered (scripts removed)."""
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",  # a fresh browser: nothing remembered
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    text = re.sub(r"<script.*?</script>|<style.*?</style>|<[^>]+>", " ", dom, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", text))


@pytest.fixture
def own_mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path / "mlflow-server").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed")
def test_the_ui_opens_the_experiment_on_the_study_and_its_trials(
    kedro_project: Path, tiny_model_dir: Path, own_mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    client = MlflowClient(own_mlflow_server.url)
    experiment_id = client.create_experiment(EXPERIMENT_NAME)  # an older, untagged experiment
    (kedro_project / "conf" / "local" / "mlflow.yml").write_text(
        f"server:\n  mlflow_tracking_uri: {own_mlflow_server.url}\n"
    )
    params = {
        "data_ingest": {"source": {"synthetic": {"n_posts": 40}}},
        "hpo": {
            "study": {"n_trials": 2, "pruner": "none", "name": "uistudy"},
            "base": {
                "model": {"encoder": str(tiny_model_dir)},
                "trainer": {"epochs": 1, "batch_size": 8},
            },
        },
    }
    for pipeline in ("data_ingest", "hpo"):
        run_pipeline(kedro_project, pipeline, params)

    tags = client.get_experiment(experiment_id).tags
    assert tags.get("mlflow.experimentKind") == "custom_model_development"
    (parent,) = client.search_runs([experiment_id], "attributes.run_name = 'uistudy'")
    trials = client.search_runs(
        [experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    # the parent also holds the worker's session run ("hpo"), as kedro-mlflow names it
    trial_names = sorted(run.info.run_name for run in trials if ".trial_" in run.info.run_name)
    assert trial_names == ["uistudy.trial_0000", "uistudy.trial_0001"]

    page = rendered_text(
        f"{own_mlflow_server.url}/#/experiments/{experiment_id}?workflowType=machine_learning",
        tmp_path / "browser-1",
    )
    assert "uistudy" in page, page[:2000]
    assert not [words for words in GENAI_OVERVIEW if words in page], page[:2000]

    run_page = rendered_text(
        f"{own_mlflow_server.url}/#/experiments/{experiment_id}/runs/{parent.info.run_id}"
        "?workflowType=machine_learning",
        tmp_path / "browser-2",
    )
    assert "Child runs" in run_page, run_page[:2000]
    for name in trial_names:
        assert name in run_page, (name, run_page[:2000])
