"""``python -m mental_health_hpo.validate_env`` on a temp copy of the project, as make runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import copy_project
from servers import MlflowServer

import mental_health_hpo


def _run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The sources under test, whatever the child's working directory (PYTHONPATH may be "src").
    package_root = str(Path(mental_health_hpo.__file__).parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "mental_health_hpo.validate_env", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_ok_project_prints_table_and_json_and_exits_0(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    run = _run(project)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["check", "status"]  # the table first
    result = json.loads(lines[-1])  # then the JSON result
    assert result["ok"] is True
    names = {c["name"]: c for c in result["checks"]}
    assert {"python", "torch", "cuda", "mlflow_store", "optuna_storage", "disk"} <= set(names)
    assert str(project / "mlflow.db") in names["mlflow_store"]["detail"]  # conf/local is read
    assert names["cuda"]["required"] is False


def test_unreachable_storage_exits_1_without_leaking_the_password(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    (project / "conf" / "local" / "parameters.yml").write_text(
        "hpo:\n  study:\n    storage: postgresql://optuna:s3cretPassw0rd@127.0.0.1:9/optuna\n"
    )
    (project / "conf" / "local" / "mlflow.yml").write_text(
        "server:\n  mlflow_tracking_uri: http://user:s3cretPassw0rd@127.0.0.1:9\n"
    )
    run = _run(project, "--json")
    assert run.returncode == 1, run.stdout + run.stderr
    result = json.loads(run.stdout)
    states = {c["name"]: c["ok"] for c in result["checks"]}
    assert states["optuna_storage"] is False and states["mlflow_store"] is False
    assert states["python"] is True
    assert "s3cretPassw0rd" not in run.stdout + run.stderr


@pytest.mark.slow
def test_a_tracking_url_with_credentials_is_checked_with_them(
    tmp_path: Path, mlflow_server: MlflowServer
) -> None:
    project = copy_project(tmp_path / "project")
    url = mlflow_server.url.replace("http://", "http://user:s3cretPassw0rd@")
    (project / "conf" / "local" / "mlflow.yml").write_text(
        f"server:\n  mlflow_tracking_uri: {url}\n"
    )
    run = _run(project, "--json")
    result = json.loads(run.stdout)
    store = {c["name"]: c for c in result["checks"]}["mlflow_store"]
    assert store["ok"] is True, store  # it used to fail with "Name or service not known"
    assert "answered 200" in store["detail"]
    assert "s3cretPassw0rd" not in run.stdout + run.stderr
