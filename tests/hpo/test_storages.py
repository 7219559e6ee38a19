"""The study runs on every storage a user may configure: a real PostgreSQL server, and
optuna-dashboard reads what the study wrote. The PostgreSQL server is the shared
``postgres_url`` fixture of tests/conftest.py (tests/servers.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState
from servers import START_DEADLINE_S, free_port
from study_workers import study_setup


@pytest.mark.postgres
def test_study_runs_and_resumes_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    setup = study_setup(tmp_path, name="pg", storage=postgres_url, n_trials=3)
    study = setup.open({}, tmp_path)
    study.ask()  # a trial orphaned by a killed process
    setup.runner(study, lambda c: c.sampled["x"]).run()
    reloaded = setup.open({}, tmp_path)
    assert [t.state for t in reloaded.trials] == [TrialState.COMPLETE] * 3


def test_optuna_dashboard_serves_the_study(tmp_path: Path, spawn: Callable[..., Any]) -> None:
    setup = study_setup(tmp_path, name="dash", n_trials=2)
    setup.runner(setup.open({}, tmp_path), lambda c: 0.5).run()
    port = free_port()
    dashboard = shutil.which("optuna-dashboard") or str(
        Path(os.sys.executable).parent / "optuna-dashboard"
    )
    spawn(
        [
            dashboard,
            f"sqlite:///{tmp_path / 'optuna.db'}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + START_DEADLINE_S  # a loaded 2-core machine is slow
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as reply:
                body = reply.read().decode()
            break
        except OSError:
            assert time.monotonic() < deadline, "optuna-dashboard did not start"
            time.sleep(0.5)
    assert '"study_name": "dash"' in body  # the spawn fixture stops the dashboard
