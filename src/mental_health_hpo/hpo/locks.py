"""The study lock for workers on many hosts: PostgreSQL advisory locks.

``flock`` on a shared folder does not hold across hosts (NFS does not honour it reliably), so a
study on PostgreSQL locks in its database: a session-level advisory lock, on its own connection,
keyed by the study and the purpose. The server drops it when the holder's connection dies, even
by SIGKILL. It is the second of the two ``workspace.locks.StudyLock`` implementations (the file
lock, for one host, lives there); ``hpo.coordination`` picks one.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

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
