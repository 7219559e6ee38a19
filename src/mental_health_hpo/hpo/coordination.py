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
from mental_health_hpo.hpo.study import StudyConfig, journal_path, resolve_storage_url
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


def coordination_for(config: StudyConfig, project_root: Path) -> Coordination:
    """Leases and locks for the study's storage."""
    url = resolve_storage_url(config.storage, project_root)
    if url.startswith("journal:///"):
        journal = journal_path(url)
        journal.parent.mkdir(parents=True, exist_ok=True)  # before the study opens it
        engine = lease_engine(f"sqlite:///{journal}.leases.db")
        return Coordination(
            LeaseStore(engine, config.name, config.lease_s),
            FileStudyLock(config.study_dir(project_root)),
        )
    engine = lease_engine(url)
    store = LeaseStore(engine, config.name, config.lease_s)
    if engine.dialect.name == "postgresql":
        return Coordination(store, AdvisoryStudyLock(engine, config.name))
    return Coordination(store, FileStudyLock(config.study_dir(project_root)))
