"""A stalled worker whose trial was taken over wakes up and saves: it must change nothing.

Real processes, the order forced. Worker A runs the study's only trial, commits epoch 0 and
reaches a save of epoch 1, where a pause point holds it; the test then SIGSTOPs it (what a long
GC pause, a swapped-out host or a network stall does) until its lease has expired. Worker B takes
the trial over, resumes from epoch 0, commits epochs 1 and 2 (the same checkpoint ids A is about
to write) and pauses after telling Optuna, its trial not finished yet. Then A gets SIGCONT:

* ``checkpoint_stage``: A has its checkpoint id and has written nothing. It used to delete B's
  committed ``ckpt-e0001`` folder as an "uncommitted leftover" and write its own bytes there.
* ``manifest_built@2``: A's epoch-1 files are durable and its manifest is built from the one it
  read before B came. Writing it used to replace B's manifest with A's stale one: B's epoch 2
  gone from it, B's epoch-1 files named with A's digests (corrupt).
* ``running_manifest_write@2``: the same manifest is in its temp file, which B's start-up sweep
  removes; the rename used to fail with a bare ``FileNotFoundError``.

Either way A's save must be refused (a ``TrialTakenOverError``), A must leave the trial to B and
exit 0, and B's checkpoints must all load verified, with nothing of A's left in the folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from servers import stop_process_group

from mental_health_hpo.checkpointing import read_manifest
from mental_health_hpo.checkpointing._recovery import find_orphans
from mental_health_hpo.checkpointing._verify import load_record
from mental_health_hpo.crash_points import LOG_ENV, PAUSE_ENV, PAUSE_FILE_ENV

WORKER = Path(__file__).with_name("stale_worker.py")
DEADLINE_S = 120
LEASE_S = 2.0  # stale_worker.LEASE_S


def _start(tmp_path: Path, name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"{name}.log").open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            f"sqlite:///{tmp_path / 'optuna.db'}",
            str(tmp_path / "study_stale"),
        ],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _log(tmp_path: Path, name: str) -> str:
    return (tmp_path / f"{name}.log").read_text(errors="replace")


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize(
    "stall_at", ["checkpoint_stage@2", "manifest_built@2", "running_manifest_write@2"]
)
def test_a_stale_owner_cannot_touch_its_successors_checkpoints(
    tmp_path: Path, stall_at: str
) -> None:
    checkpoints = tmp_path / "study_stale" / "trial_0000" / "checkpoints"
    points = tmp_path / "points.log"
    a_pause, b_pause = tmp_path / "a_paused", tmp_path / "b_paused"
    workers: list[subprocess.Popen[bytes]] = []
    try:
        a = _start(tmp_path, "a", {PAUSE_ENV: stall_at, PAUSE_FILE_ENV: str(a_pause),
                                   LOG_ENV: str(points)})  # fmt: skip
        workers.append(a)
        _wait_for(lambda: a_pause.exists() or a.poll() is not None, f"A to reach {stall_at}")
        assert a.poll() is None, _log(tmp_path, "a")[-3000:]
        os.kill(a.pid, signal.SIGSTOP)  # stalled: no heartbeat, no training, no save
        a_pause.unlink()  # it goes on from the pause point once it is continued
        before = read_manifest(checkpoints)
        assert before is not None and [r.epoch for r in before.checkpoints] == [0]

        b = _start(tmp_path, "b", {PAUSE_ENV: "after_tell", PAUSE_FILE_ENV: str(b_pause),
                                   LOG_ENV: str(points)})  # fmt: skip
        workers.append(b)
        _wait_for(lambda: b_pause.exists() or b.poll() is not None, "B to take over and tell")
        assert b.poll() is None, _log(tmp_path, "b")[-3000:]
        assert "Taking over trial 0" in _log(tmp_path, "b")
        successor = read_manifest(checkpoints)
        assert successor is not None
        assert [r.epoch for r in successor.history] == [0, 1, 2]

        os.kill(a.pid, signal.SIGCONT)  # the stale owner wakes up in the middle of its save
        _wait_for(lambda: "leaving it" in _log(tmp_path, "a") or a.poll() is not None, "A")
        assert read_manifest(checkpoints) == successor  # A changed nothing: B's commits stand
        for record in successor.checkpoints:
            load_record(checkpoints, record, with_state=record.is_full)  # B's bytes, verified
        assert "TrialTakenOverError" in _log(tmp_path, "a"), _log(tmp_path, "a")[-3000:]

        b_pause.unlink()  # B finishes the trial
        codes = [b.wait(timeout=DEADLINE_S), a.wait(timeout=DEADLINE_S)]
        assert codes == [0, 0], [_log(tmp_path, n)[-3000:] for n in ("a", "b")]
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.kill(worker.pid, signal.SIGCONT)
            stop_process_group(worker)

    assert "leaving it to that worker" in _log(tmp_path, "a")
    finished = read_manifest(checkpoints)
    assert finished is not None and finished.finished
    assert [h.checkpoint_id for h in finished.history] == [
        h.checkpoint_id for h in successor.history
    ]
    for record in finished.checkpoints:
        load_record(checkpoints, record, with_state=record.is_full)
    assert find_orphans(tmp_path / "study_stale") == []
    study = optuna.load_study(study_name="stale", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    [trial] = study.get_trials()
    assert trial.state is optuna.trial.TrialState.COMPLETE
