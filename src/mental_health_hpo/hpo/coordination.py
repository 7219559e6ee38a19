"""What the workers of one study share besides Optuna's tables: leases and study locks.

Built from the study's storage URL, so every worker that reaches the database agrees:

- ``postgresql://`` (many hosts): leases in a table of that database, PostgreSQL advisory locks;
- ``sqlite:///`` (one host): leases in the same SQLite file, a file lock in the study folder;
- ``journal:///`` (one host): leases in a SQLite file beside the journal, the same file lock.

This is the one place that picks a ``workspace.locks.StudyLock`` implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mental_health_hpo.hpo.leases import LeaseStore, Worker
from mental_health_hpo.hpo.locks import AdvisoryStudyLock
from mental_health_hpo.hpo.study import (
    StudyConfig,
    journal_path,
    make_storage_folder,
    resolve_storage_url,
    storage_for_display,
)
from mental_health_hpo.workspace.locks import FileStudyLock, StudyLock

#: Seconds SQLite waits on another process's write before "database is locked".
SQLITE_BUSY_TIMEOUT_S = 60


@dataclass
class Coordination:
    """The lease store, the study lock and this worker's identity."""

    leases: LeaseStore
    lock: StudyLock
    worker: Worker = field(default_factory=Worker)


def lease_engine(url: str) -> Engine:
    """An engine for leases and locks on the study's database (one small pool per worker)."""
    if url.startswith("sqlite:"):
        return sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    return sa.create_engine(url, pool_size=2, max_overflow=4, pool_pre_ping=True)


class UnsafeCoordinationError(ValueError):
    """The study's settings cannot keep its workers apart (a bucket study without PostgreSQL)."""


def coordination_for(config: StudyConfig, project_root: Path) -> Coordination:
    """Leases and locks for the study's storage.

    A study in a bucket has workers that share no filesystem: a file lock beside a SQLite or
    journal file would coordinate one host only, so only PostgreSQL is accepted there.
    """
    url = resolve_storage_url(config.storage, project_root)
    if config.in_bucket and not url.startswith("postgresql"):
        raise UnsafeCoordinationError(
            f"hpo.study.experiments_dir={config.experiments_dir!r} is a bucket, so the study's "
            f"workers share no filesystem, and hpo.study.storage "
            f"({storage_for_display(config.storage)}) coordinates with file locks that hold on "
            f"one host only. Give a PostgreSQL study database "
            f"(hpo.study.storage=postgresql+psycopg://user@host:5432/db, password in "
            f"conf/local/credentials.yml), or a folder for experiments_dir"
        )
    make_storage_folder(url)  # before the leases or the study open a file there
    if url.startswith("journal:///"):
        journal = journal_path(url)
        engine = lease_engine(f"sqlite:///{journal}.leases.db")
        return Coordination(
            LeaseStore(engine, config.name, config.lease_s),
            FileStudyLock(config.work_dir(project_root)),
        )
    engine = lease_engine(url)
    store = LeaseStore(engine, config.name, config.lease_s)
    if engine.dialect.name == "postgresql":
        return Coordination(store, AdvisoryStudyLock(engine, config.name))
    return Coordination(store, FileStudyLock(config.work_dir(project_root)))
