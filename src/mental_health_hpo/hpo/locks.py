"""Study-level locks that hold wherever the workers of a study run.

A study's shared steps (claiming the next trial, study retention, publishing the best
checkpoint, writing the study result, creating the study's MLflow parent run) must be done by
one worker at a time, across hosts. ``flock`` on a shared folder is not that: NFS does not
honour it reliably. So:

- PostgreSQL (many hosts): a session-level advisory lock, on its own connection, keyed by the
  study and the purpose. The server drops it when the holder's connection dies, even by SIGKILL.
- SQLite and journal files are one host by definition (SQLite over NFS corrupts): an ``flock``
  on a file beside the database is enough there, and it too dies with its process.

Both satisfy the checkpoint core's ``StudyLock`` protocol: ``hold(purpose)`` is a context manager.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)


def advisory_key(study: str, purpose: str) -> int:
    """A signed 64-bit key, stable across hosts and Python versions (no ``hash()``)."""
    digest = hashlib.sha256(f"mental_health_hpo:{study}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryStudyLock:
    """``pg_advisory_lock`` per (study, purpose), held on a dedicated connection."""

    def __init__(self, engine: Engine, study: str) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError(f"advisory locks need PostgreSQL, got {engine.dialect.name}")
        self.engine = engine
        self.study = study

    @contextmanager
    def hold(self, purpose: str) -> Iterator[None]:
        key = advisory_key(self.study, purpose)
        started = time.monotonic()
        with self.engine.connect() as connection:
            connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            connection.commit()
            waited = time.monotonic() - started
            if waited > 1:
                logger.info("Waited %.1fs for the study lock %r", waited, purpose)
            try:
                yield
            finally:
                connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()


class FileStudyLock:
    """``flock`` on ``<folder>/.<study>.<purpose>.lock``: one host only (SQLite, journal)."""

    def __init__(self, folder: Path, study: str) -> None:
        self.folder = folder
        self.study = study

    @contextmanager
    def hold(self, purpose: str) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{self.study}.{purpose}")
        with (self.folder / f".{safe}.lock").open("a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
