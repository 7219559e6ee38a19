"""Named crash points: test-only fault injection at the exact instants a chaos test must hit.

Why: a kill at a random moment rarely lands inside a write that takes microseconds, so the
chaos test (tests/pipelines/hpo/test_chaos.py) names the instants and the code under test calls
:func:`crash_point` there. Outside tests no variable is set and a point costs one lookup.

- ``MH_HPO_CRASH_AT=after_tell`` makes the process SIGKILL itself (no cleanup, no ``finally``,
  no atexit: what a power cut or the OOM killer does) the first time it reaches ``after_tell``;
  ``after_tell@2`` the second time; several points are separated by commas.
- ``MH_HPO_PAUSE_AT=<point>[@n]`` makes it create the file named by ``MH_HPO_PAUSE_FILE`` there
  and wait until that file is removed (a test stops a server meanwhile), then go on.
- ``MH_HPO_CRASH_LOG=<file>``: each kill or pause first appends ``<point>@<n> <pid>`` to it, so
  a test can tell that the process died where it was meant to.

Only the names in :data:`POINTS` are accepted: a misspelt point raises at once instead of never
firing.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

CRASH_ENV = "MH_HPO_CRASH_AT"
PAUSE_ENV = "MH_HPO_PAUSE_AT"
PAUSE_FILE_ENV = "MH_HPO_PAUSE_FILE"
LOG_ENV = "MH_HPO_CRASH_LOG"

#: Every named point, and where it is.
POINTS: dict[str, str] = {
    "after_tell": "hpo runner: the trial was told to Optuna, not yet finalized",
    "running_manifest_write": "a running trial's manifest temp file is written, not committed",
    "checkpoint_stage": "a save has its checkpoint id, none of its files is written yet",
    "manifest_built": "a running trial's next manifest is built from the one read, not written",
    "publish_swap": "the best checkpoint is staged and the old one moved away, not swapped in",
    "before_trial_run": "hpo objective: before the trial's MLflow run is created or reopened",
    "buffered_before_run": "tracking: metrics of a run that does not exist yet were buffered",
    "session_run_created": "start-up: kedro-mlflow's session run exists, no node has run yet",
    "before_worker_lease": "start-up: the study is open, this worker holds no lease yet",
    "object_upload": "object storage: the uploader starts one queued upload to the bucket",
}

_hits: dict[str, int] = {}
_lock = threading.Lock()
_PAUSE_POLL_S = 0.05
_PAUSE_MAX_S = 600.0


def _wanted(spec: str) -> dict[str, int]:
    """``"a,b@2"`` -> ``{"a": 1, "b": 2}``; unknown names raise."""
    wanted: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, nth = item.partition("@")
        if name not in POINTS:
            raise ValueError(f"unknown crash point {name!r} in {spec!r}; known: {sorted(POINTS)}")
        wanted[name] = int(nth) if nth else 1
    return wanted


def _log(name: str, nth: int) -> None:
    log = os.environ.get(LOG_ENV)
    if log:
        with Path(log).open("a", encoding="utf-8") as handle:
            handle.write(f"{name}@{nth} {os.getpid()}\n")
            handle.flush()
            os.fsync(handle.fileno())


def crash_point(name: str) -> None:
    """Kill or pause this process here when the environment names this point (tests only)."""
    crash, pause = os.environ.get(CRASH_ENV), os.environ.get(PAUSE_ENV)
    if not crash and not pause:
        return
    if name not in POINTS:
        raise ValueError(f"crash_point({name!r}) is not in crash_points.POINTS")
    with _lock:
        nth = _hits[name] = _hits.get(name, 0) + 1
    if pause and _wanted(pause).get(name) == nth:
        _log(name, nth)
        _pause()
    if crash and _wanted(crash).get(name) == nth:
        _log(name, nth)
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)  # SIGKILL is delivered before this returns; never run on past the point


def _pause() -> None:
    flag = Path(os.environ[PAUSE_FILE_ENV])
    flag.touch()
    deadline = time.monotonic() + _PAUSE_MAX_S
    while flag.exists() and time.monotonic() < deadline:
        time.sleep(_PAUSE_POLL_S)
