"""The study lock: one protocol, two implementations, and one place that picks between them.

A file lock is real mutual exclusion between processes (a second process waits; a holder killed
by SIGKILL releases it), and every one-host storage gets the same lock file per purpose, so a
test, a bench and a production worker of one study exclude each other.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mental_health_hpo.hpo.coordination import coordination_for
from mental_health_hpo.hpo.locks import AdvisoryStudyLock
from mental_health_hpo.hpo.study import StudyConfig
from mental_health_hpo.workspace.layout import LOCKS_DIRNAME
from mental_health_hpo.workspace.locks import FileStudyLock, StudyLock

HOLDER = """
import sys, time
from pathlib import Path
from mental_health_hpo.workspace.locks import FileStudyLock
with FileStudyLock(Path(sys.argv[1])).hold("retention"):
    Path(sys.argv[2]).write_text(str(time.time()))
    time.sleep(float(sys.argv[3]))
"""


def _holder(spawn: Callable[..., Any], study: Path, mark: Path, hold_s: float) -> Any:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return spawn([sys.executable, "-c", HOLDER, str(study), str(mark), str(hold_s)], env=env)


def _wait_for(path: Path, deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


def test_a_second_process_waits_for_the_holder(tmp_path: Path, spawn: Callable[..., Any]) -> None:
    study = tmp_path / "study_x"
    with FileStudyLock(study).hold("retention"):
        child = _holder(spawn, study, tmp_path / "got", 0)
        time.sleep(1.0)
        assert not (tmp_path / "got").exists(), "the child took a lock this process holds"
        released = time.time()
    child.wait(timeout=60)
    assert float((tmp_path / "got").read_text()) >= released


def test_a_holder_killed_by_sigkill_releases_the_lock(
    tmp_path: Path, spawn: Callable[..., Any]
) -> None:
    study = tmp_path / "study_x"
    child = _holder(spawn, study, tmp_path / "got", 600)
    _wait_for(tmp_path / "got")
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    started = time.monotonic()
    with FileStudyLock(study).hold("retention"):
        assert time.monotonic() - started < 30


def test_purposes_do_not_exclude_each_other(tmp_path: Path) -> None:
    lock = FileStudyLock(tmp_path / "study_x")
    with lock.hold("retention"), lock.hold("publish"):
        pass
    assert {p.name for p in (tmp_path / "study_x" / LOCKS_DIRNAME).iterdir()} <= {
        "retention.lock",
        "publish.lock",
    }


@pytest.mark.parametrize("storage", ["sqlite:///optuna.db", "journal:///optuna.journal"])
def test_every_one_host_storage_locks_the_study_folder(tmp_path: Path, storage: str) -> None:
    config = StudyConfig(name="s", storage=storage)
    lock: StudyLock = coordination_for(config, tmp_path).lock
    assert isinstance(lock, FileStudyLock)
    # The same file a test or bench gets from FileStudyLock(<study folder>).
    same = FileStudyLock(config.study_dir(tmp_path))
    assert lock.path("retention") == same.path("retention")
    assert lock.path("retention") == config.study_dir(tmp_path) / LOCKS_DIRNAME / "retention.lock"


@pytest.mark.postgres
def test_postgresql_studies_lock_in_their_database(postgres_url: str, tmp_path: Path) -> None:
    lock = coordination_for(StudyConfig(name="pg", storage=postgres_url), tmp_path).lock
    assert isinstance(lock, AdvisoryStudyLock)
    with lock.hold("retention"):
        pass
