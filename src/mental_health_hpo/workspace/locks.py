"""The study lock: one worker at a time for a study's shared steps.

A study's shared steps (claiming the next trial, study retention, publishing the best
checkpoint, writing the study result, creating the study's MLflow parent run) must be done by
one worker at a time. :class:`StudyLock` is what those steps ask for; there are exactly two
implementations, and ``mental_health_hpo.hpo.coordination`` alone picks one from the study's
storage URL, so a test, a bench and a production worker of the same study take the same lock:

- :class:`FileStudyLock` (here): ``filelock`` on ``<study>/.locks/<purpose>.lock``, for workers on
  one host (SQLite and journal storages; ``flock`` is not reliable on NFS). The kernel drops it
  when its holder dies, even by SIGKILL.
- ``mental_health_hpo.hpo.locks.AdvisoryStudyLock``: PostgreSQL advisory locks, for workers on
  many hosts (it needs SQLAlchemy, which this package does not import).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from filelock import FileLock

from mental_health_hpo.workspace.atomic import make_dir_durable
from mental_health_hpo.workspace.layout import LOCKS_DIRNAME


class StudyLock(Protocol):
    """Mutual exclusion per purpose for a study's shared steps."""

    def hold(self, purpose: str) -> AbstractContextManager[None]: ...


class FileStudyLock:
    """A file lock per purpose in the study folder: workers on one host, not across hosts."""

    def __init__(self, study_dir: Path) -> None:
        self.directory = Path(study_dir) / LOCKS_DIRNAME

    def path(self, purpose: str) -> Path:
        return self.directory / f"{purpose}.lock"

    @contextlib.contextmanager
    def hold(self, purpose: str) -> Iterator[None]:
        make_dir_durable(self.directory)
        # A fresh FileLock per hold: two threads (or two holders in one process) each open their
        # own descriptor, so they exclude each other as two processes do.
        with FileLock(self.path(purpose), is_singleton=False):
            yield
