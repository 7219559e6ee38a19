"""Secrets never reach MLflow's store or MLflow's own stdout lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.entities import Param
from mlflow.tracking import MlflowClient
from servers import MlflowServer

from mental_health_hpo.tracking import MetricsBuffer, TrialTracker, flatten_params
from mental_health_hpo.tracking.masking import install_mlflow_masking

AWS_LIKE = "AKIAIOSFODNN7EXAMPLE"
PASSWORD = "s3cretPassw0rdPlanted"


def test_params_named_like_secrets_are_stored_masked(tmp_path: Path) -> None:
    install_mlflow_masking()
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("e")
    run_id = client.create_run(experiment, tags={"hub_token": AWS_LIKE}).info.run_id
    client.log_param(run_id, "api_key", AWS_LIKE)  # kedro-mlflow's path
    client.log_batch(run_id, params=[Param("data.secret", AWS_LIKE)])
    client.set_tag(run_id, "db_password", AWS_LIKE)
    tracker = TrialTracker(client, experiment, MetricsBuffer(tmp_path / "b.jsonl"))
    trial = tracker.start(None, "t", {"hub": {"api_key": AWS_LIKE, "token_env": "HF_TOKEN"}}, {})
    assert trial is not None
    for run in (client.get_run(run_id), client.get_run(trial)):
        assert AWS_LIKE not in str(run.data.params) + str(run.data.tags)
    assert client.get_run(run_id).data.params == {"api_key": "***", "data.secret": "***"}
    assert client.get_run(trial).data.params["hub.token_env"] == "HF_TOKEN"
    assert flatten_params({"api_key": AWS_LIKE}) == {"api_key": "***"}


@pytest.mark.slow
def test_view_run_lines_do_not_print_the_tracking_password(
    mlflow_server: MlflowServer, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    install_mlflow_masking()
    url = mlflow_server.url.replace("http://", f"http://mlflow-user:{PASSWORD}@")
    client = MlflowClient(url)  # the server has no auth: it ignores the credentials
    experiment = client.create_experiment(f"links-{tmp_path.name}")
    run_id = client.create_run(experiment, run_name="hpo").info.run_id
    capfd.readouterr()
    client.set_terminated(run_id)  # MLflow prints "View run hpo at: <url>" here
    out = capfd.readouterr().out
    assert "View run hpo at: http://mlflow-user:***@127.0.0.1" in out
    assert PASSWORD not in out
