"""Real servers on 127.0.0.1 for tests: a throwaway PostgreSQL cluster and an ``mlflow server``.

Both are context managers that stop what they started, even when the test fails.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest


def free_port() -> int:
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


@contextmanager
def postgres_cluster(*databases: str) -> Iterator[str]:
    """A PostgreSQL cluster run as the postgres user; yields ``postgresql+psycopg://...:port``.

    Skips when the server binaries or the postgres user are missing, or when not root.
    """
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
    port = free_port()
    options = f"'-p {port} -k {data.parent} -c listen_addresses=127.0.0.1 -c max_connections=200'"
    _as_postgres(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    try:
        _as_postgres(
            str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "120",
            "-l", str(data.parent / "log"),
            "-o", options,
            "start",
        )  # fmt: skip
        for name in databases:
            _as_postgres(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), name)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            ["su", "postgres", "-s", "/bin/sh", "-c",
             f"{bindir / 'pg_ctl'} -D {data} -m immediate stop"],
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(data.parent, ignore_errors=True)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as reply:
            return reply.status == 200
    except OSError:
        return False


@contextmanager
def mlflow_server(root: Path, timeout_s: float = 180) -> Iterator[tuple[str, Path]]:
    """``mlflow server`` on a free port, backed by ``root/mlflow.db``; yields (url, db path).

    Readiness is the server's ``/health`` endpoint, not an open socket. The whole process group
    is stopped on exit (the server forks workers).
    """
    root.mkdir(parents=True, exist_ok=True)
    db = root / "mlflow.db"
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        [
            str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{db}",
            "--artifacts-destination", str(root / "artifacts"),
            "--workers", "1",
        ],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while not _healthy(url):
            if process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(root / 'server.log').read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError("mlflow server not healthy in time")
            time.sleep(0.5)
        yield url, db
    finally:
        stop_group(process)
        log.close()


def stop_group(process: subprocess.Popen, grace_s: float = 10) -> None:
    """SIGTERM the process group, then SIGKILL what is left."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=grace_s)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
