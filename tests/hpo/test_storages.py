"""The study runs on every storage a user may configure: a real PostgreSQL server, and
optuna-dashboard reads what the study wrote."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.trial import TrialState

from mental_health_hpo.hpo.runner import run_study
from mental_health_hpo.hpo.search_space import SearchSpace
from mental_health_hpo.hpo.study import StudyConfig, open_study

SPACE = SearchSpace.from_params({"x": {"type": "float", "low": 0.0, "high": 1.0}})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(command)],
        check=True,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1, run as the postgres user."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        binaries = []
    if not binaries or os.geteuid() != 0:
        pytest.skip("PostgreSQL server not installed (apt-get install -y postgresql)")
    bindir = Path(binaries[-1]).parent
    # Not under pytest's tmp root: that is private to root and postgres could not enter it.
    data = Path(tempfile.mkdtemp(prefix="mental-health-hpo-pg-")) / "data"
    shutil.chown(data.parent, "postgres")
    port = _free_port()
    _as_postgres(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    _as_postgres(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-w",
        "-l",
        str(data.parent / "log"),
        "-o",
        f"'-p {port} -k {data.parent} -c listen_addresses=127.0.0.1'",
        "start",
    )
    try:
        _as_postgres(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "optuna")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/optuna"
    finally:
        _as_postgres(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(data.parent, ignore_errors=True)


@pytest.mark.postgres
def test_study_runs_and_resumes_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    config = StudyConfig(name="pg", storage=postgres_url, n_trials=3)
    study = open_study(config, SPACE, tmp_path)
    study.ask()  # a trial orphaned by a killed process
    run_study(study, config, SPACE, {}, lambda c: c.sampled["x"], tmp_path / "study_pg")
    reloaded = open_study(config, SPACE, tmp_path)
    assert [t.state for t in reloaded.trials] == [TrialState.COMPLETE] * 3


def test_optuna_dashboard_serves_the_study(tmp_path: Path) -> None:
    config = StudyConfig(name="dash", storage="sqlite:///optuna.db", n_trials=2)
    run_study(open_study(config, SPACE, tmp_path), config, SPACE, {}, lambda c: 0.5, tmp_path / "s")
    port = _free_port()
    dashboard = shutil.which("optuna-dashboard") or str(
        Path(os.sys.executable).parent / "optuna-dashboard"
    )
    process = subprocess.Popen(
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
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/studies", timeout=2
                ) as reply:
                    body = reply.read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline, "optuna-dashboard did not start"
                time.sleep(0.5)
        assert '"study_name": "dash"' in body
    finally:
        process.terminate()
        process.wait(timeout=20)
