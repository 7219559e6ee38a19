"""Each command of deploy/compose.workers.yml, run in a shell (there is no container engine
here) against a real PostgreSQL: the mlflow server answers /health, init creates the tables and
the experiment, and one worker runs a one-trial study to the end with exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from conftest import copy_project
from mlflow.tracking import MlflowClient
from servers import PostgresServer, free_port, stop_process_group

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "compose.workers.yml"
SHELL_ENV = {"POSTGRES_PASSWORD": "hpo"}


@pytest.fixture
def postgres_base(postgres_server: PostgresServer) -> str:
    """The session's cluster, with the ``mlflow`` database the compose file's init SQL creates."""
    engine = sa.create_engine(postgres_server.url("postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        exists = connection.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = 'mlflow'"))
        if exists.scalar() is None:
            connection.execute(sa.text("CREATE DATABASE mlflow"))
    return postgres_server.url("").rstrip("/")


def _command(service: str, base: str, shared: Path, mlflow_url: str) -> list[str]:
    """The service's command as compose would run it, with this machine's hosts and paths."""
    command = yaml.safe_load(COMPOSE.read_text())["services"][service]["command"]
    parts = command.split() if isinstance(command, str) else list(command)
    replacements = {
        "${POSTGRES_PASSWORD:-hpo}": SHELL_ENV["POSTGRES_PASSWORD"],
        "postgresql+psycopg://hpo:hpo@postgres:5432": base,
        "/shared": str(shared),
        "http://mlflow:5000": mlflow_url,
    }
    out = []
    for part in parts:
        for old, new in replacements.items():
            part = part.replace(old, new)
        out.append(part)
    return out


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def test_every_compose_command_runs(
    postgres_base: str, tmp_path: Path, tiny_model_dir: Path
) -> None:
    shared = tmp_path / "shared"
    port = free_port()
    server = _command("mlflow", postgres_base, shared, "")
    assert server[:2] == ["mlflow", "server"]
    server = [_bin("mlflow"), *server[1:]]
    server[server.index("--host") + 1] = "127.0.0.1"
    server[server.index("--port") + 1] = str(port)
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "mlflow.log").open("w")
    process = subprocess.Popen(server, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as reply:
                    assert reply.status == 200
                    break
            except OSError:
                assert process.poll() is None, (tmp_path / "mlflow.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "mlflow server not healthy"
                time.sleep(1)

        init = _command("init", postgres_base, shared, url)
        done = subprocess.run([sys.executable, *init[1:]], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        assert MlflowClient(url).get_experiment_by_name("mental_health_hpo") is not None
        tables = sa.inspect(sa.create_engine(f"{postgres_base}/optuna")).get_table_names()
        assert {"studies", "trials", "mh_hpo_leases"} <= set(tables)

        worker = _command("worker", postgres_base, shared, url)
        assert worker[:4] == ["kedro", "run", "--pipelines", "hpo"]
        project = copy_project(tmp_path / "worker")
        (project / "conf/local/mlflow.yml").write_text(f"server:\n  mlflow_tracking_uri: {url}\n")
        extra = (
            f",hpo.study.n_trials=1,hpo.study.pruner=none,hpo.base.model.encoder={tiny_model_dir}"
            ",hpo.base.trainer.epochs=1,data_ingest.source.synthetic.n_posts=40"
        )
        params = worker[worker.index("--params") + 1] + extra
        env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": str(REPO / "src")}
        ran = subprocess.run(
            [_bin("kedro"), *worker[1:worker.index("--params") + 1], params],
            cwd=project, env=env, capture_output=True, text=True, timeout=500,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
        assert (shared / "experiments/study_redsm5_minilm/study_result.json").exists()
    finally:
        stop_process_group(process)
        log.close()
