"""Leases in the study's database: who runs a trial, until when, and an atomic take-over.

Why a table of our own rather than Optuna's heartbeat: Optuna's RDB heartbeat only works with
``study.optimize`` (not ask/tell), fails a stale trial and retries it as a *new* trial, which
breaks the trial's checkpoint folder and MLflow run. Here a lease names its owner (host, pid,
start time) and an expiry; a heartbeat thread renews it; once it has expired, exactly one worker
wins the take-over (a conditional UPDATE, or an INSERT against the primary key) and resumes the
*same* trial from its last committed checkpoint.

Times are the database server's clock, as Optuna's heartbeat does, so hosts with skewed clocks
agree on what "expired" means. A lease row also exists per worker (``worker:<id>``): other
workers read it to tell a live worker's MLflow run from an abandoned one, and to count the
workers on one host.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

logger = logging.getLogger(__name__)

TABLE = "mh_hpo_leases"

_METADATA = sa.MetaData()
_LEASES = sa.Table(
    TABLE,
    _METADATA,
    sa.Column("study", sa.String(512), primary_key=True),
    sa.Column("resource", sa.String(512), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("host", sa.String(256), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("acquired_at", sa.Float, nullable=False),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("info", sa.Text, nullable=False, default="{}"),
)


def trial_resource(number: int) -> str:
    return f"trial:{number}"


def worker_resource(owner: str) -> str:
    return f"worker:{owner}"


@dataclass(frozen=True)
class Worker:
    """This process, as other workers see it."""

    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    started_at: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def owner(self) -> str:
        return f"{self.host}:{self.pid}:{self.id}"


@dataclass(frozen=True)
class Lease:
    """A held lease; ``generation`` changes on every take-over, so a renewal can tell."""

    study: str
    resource: str
    owner: str
    generation: int
    previous_owner: str | None = None


@dataclass(frozen=True)
class LeaseRow:
    resource: str
    owner: str
    host: str
    pid: int
    expires_in_s: float
    info: dict[str, Any]

    def dead_on(self, host: str) -> bool:
        """True when the holder ran on ``host`` (this host) and its process is gone.

        The same-host shortcut: no need to wait for the expiry of a lease whose process this
        host can see is dead. Other hosts' leases are judged by their expiry only.
        """
        if self.host != host:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def _now_sql(engine: Engine) -> str:
    """The database's clock in epoch seconds, as SQL."""
    if engine.dialect.name == "postgresql":
        return "EXTRACT(EPOCH FROM clock_timestamp())"
    if engine.dialect.name == "sqlite":
        return "((julianday('now') - 2440587.5) * 86400.0)"
    raise ValueError(
        f"leases need PostgreSQL or SQLite, got a {engine.dialect.name} storage: set "
        "hpo.study.storage to postgresql://... (many hosts) or sqlite:///... (one host)"
    )


class LeaseStore:
    """Acquire, renew, release and list leases of one study."""

    def __init__(self, engine: Engine, study: str, period_s: float) -> None:
        if period_s <= 0:
            raise ValueError(f"hpo.study.lease_s must be > 0, got {period_s}")
        self.engine = engine
        self.study = study
        self.period_s = float(period_s)
        self._now = _now_sql(engine)
        for attempt in range(5):  # workers starting together race to create the table
            try:
                _METADATA.create_all(engine, checkfirst=True)
                break
            except sa.exc.DBAPIError:
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def acquire(
        self, resource: str, worker: Worker, info: dict[str, Any] | None = None
    ) -> Lease | None:
        """The lease when this worker now holds it; None when a live lease of another holds it."""
        params = {
            "study": self.study,
            "resource": resource,
            "owner": worker.owner,
            "host": worker.host,
            "pid": worker.pid,
            "period": self.period_s,
            "info": json.dumps(info or {}),
        }
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    sa.text(
                        f"INSERT INTO {TABLE} (study, resource, owner, host, pid, expires_at, "
                        f"acquired_at, generation, info) VALUES (:study, :resource, :owner, "
                        f":host, :pid, {self._now} + :period, {self._now}, 1, :info)"
                    ),
                    params,
                )
            return Lease(self.study, resource, worker.owner, 1)
        except IntegrityError:
            pass  # a row exists: take it over only if it has expired (or is already ours)
        with self.engine.connect() as connection:  # for the log line only
            previous = connection.execute(
                sa.text(f"SELECT owner FROM {TABLE} WHERE study = :study AND resource = :resource"),
                params,
            ).scalar()
        with self.engine.begin() as connection:  # write first: SQLite upgrades no read lock
            updated = connection.execute(
                sa.text(
                    f"UPDATE {TABLE} SET owner = :owner, host = :host, pid = :pid, "
                    f"expires_at = {self._now} + :period, acquired_at = {self._now}, "
                    f"generation = generation + 1, info = :info "
                    f"WHERE study = :study AND resource = :resource "
                    f"AND (expires_at < {self._now} OR owner = :owner)"
                ),
                params,
            )
            if updated.rowcount != 1:
                return None
            generation = connection.execute(
                sa.text(
                    f"SELECT generation FROM {TABLE} WHERE study = :study AND resource = :resource"
                ),
                params,
            ).scalar_one()
        prior = None if previous == worker.owner else previous
        return Lease(self.study, resource, worker.owner, int(generation), prior)

    def take_from_dead(self, row: LeaseRow, worker: Worker) -> Lease | None:
        """Take over ``row``'s lease before its expiry: its holder is known dead."""
        params = {
            "study": self.study,
            "resource": row.resource,
            "dead": row.owner,
            "owner": worker.owner,
            "host": worker.host,
            "pid": worker.pid,
            "period": self.period_s,
        }
        with self.engine.begin() as connection:
            updated = connection.execute(
                sa.text(
                    f"UPDATE {TABLE} SET owner = :owner, host = :host, pid = :pid, "
                    f"expires_at = {self._now} + :period, acquired_at = {self._now}, "
                    "generation = generation + 1, info = '{}' "
                    "WHERE study = :study AND resource = :resource AND owner = :dead"
                ),
                params,
            )
            if updated.rowcount != 1:
                return None
            generation = connection.execute(
                sa.text(
                    f"SELECT generation FROM {TABLE} WHERE study = :study AND resource = :resource"
                ),
                params,
            ).scalar_one()
        return Lease(self.study, row.resource, worker.owner, int(generation), row.owner)

    def renew(self, lease: Lease) -> bool:
        """Push the expiry on; False when the lease was taken over (this worker lost it)."""
        with self.engine.begin() as connection:
            updated = connection.execute(
                sa.text(
                    f"UPDATE {TABLE} SET expires_at = {self._now} + :period "
                    "WHERE study = :study AND resource = :resource AND owner = :owner "
                    "AND generation = :generation"
                ),
                {**_key(lease), "period": self.period_s},
            )
            return updated.rowcount == 1

    def release(self, lease: Lease) -> None:
        """Drop the lease: the resource is done (a finished trial) or free to take at once."""
        with self.engine.begin() as connection:
            connection.execute(
                sa.text(
                    f"DELETE FROM {TABLE} WHERE study = :study AND resource = :resource "
                    "AND owner = :owner AND generation = :generation"
                ),
                _key(lease),
            )

    def live(self, prefix: str = "") -> list[LeaseRow]:
        """Unexpired leases whose resource starts with ``prefix``."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    f"SELECT resource, owner, host, pid, expires_at - {self._now}, info "
                    f"FROM {TABLE} WHERE study = :study AND resource LIKE :prefix "
                    f"AND expires_at >= {self._now}"
                ),
                {"study": self.study, "prefix": f"{prefix}%"},
            ).all()
        return [
            LeaseRow(r[0], r[1], r[2], int(r[3]), float(r[4]), json.loads(r[5] or "{}"))
            for r in rows
        ]

    def expired(self, prefix: str = "") -> list[str]:
        """Resources under ``prefix`` whose lease has expired (its holder stopped renewing)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    f"SELECT resource FROM {TABLE} WHERE study = :study "
                    f"AND resource LIKE :prefix AND expires_at < {self._now}"
                ),
                {"study": self.study, "prefix": f"{prefix}%"},
            ).all()
        return [str(r[0]) for r in rows]


def _key(lease: Lease) -> dict[str, Any]:
    return {
        "study": lease.study,
        "resource": lease.resource,
        "owner": lease.owner,
        "generation": lease.generation,
    }


class Heartbeat:
    """A daemon thread that renews held leases every third of the lease period.

    A renewal that finds its lease taken over marks it lost; the trial then stops at its next
    check without telling Optuna anything, since its new owner goes on with it.
    """

    def __init__(self, store: LeaseStore) -> None:
        self.store = store
        self._held: dict[str, Lease] = {}
        self._lost: set[str] = set()
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lease-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.store.period_s)

    @contextmanager
    def holding(self, lease: Lease) -> Iterator[Lease]:
        """Renew ``lease`` while the block runs."""
        with self._guard:
            self._held[lease.resource] = lease
            self._lost.discard(lease.resource)
        try:
            yield lease
        finally:
            with self._guard:
                self._held.pop(lease.resource, None)

    def lost(self, lease: Lease) -> bool:
        with self._guard:
            return lease.resource in self._lost

    def confirm(self, lease: Lease) -> bool:
        """Renew ``lease`` now; False when it was taken over. The check before a commit: a
        worker that stalled past its lease (SIGSTOP, a long GC or network stall) must learn it
        before it writes, not at its heartbeat thread's next beat. A database that cannot answer
        leaves the verdict to the heartbeat (True); the storage's own fence still holds."""
        if self.lost(lease):
            return False
        try:
            renewed = self.store.renew(lease)
        except Exception as error:
            logger.warning("Could not confirm lease %s: %s", lease.resource, error)
            return True
        if not renewed:
            self._mark_lost(lease)
        return renewed

    def _loop(self) -> None:
        interval = self.store.period_s / 3
        while not self._stop.wait(interval):
            self.beat()

    def beat(self) -> None:
        with self._guard:
            held = list(self._held.values())
        for lease in held:
            try:
                renewed = self.store.renew(lease)
            except Exception as error:  # the database is away: try again next beat
                logger.warning("Could not renew lease %s: %s", lease.resource, error)
                continue
            if not renewed:
                self._mark_lost(lease)

    def _mark_lost(self, lease: Lease) -> None:
        logger.error(
            "Lease %s was taken over by another worker; this worker stops it", lease.resource
        )
        with self._guard:
            self._lost.add(lease.resource)
            self._held.pop(lease.resource, None)
