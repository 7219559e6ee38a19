"""A co-best tie in a taken-over trial: the study publishes, evaluate works, every worker exits 0.

The order is forced, never left to luck. Worker A is SIGKILLed while committing the second
epoch of the study's only trial (crash point ``running_manifest_write@2``); worker B takes the
trial over, trains the second epoch to the same metric value (a tie over a metric that never
moved) and pauses right after telling Optuna (``after_tell``), its trial lease still held and the
trial not finished yet. Worker C then finds the study complete and derives its result while B is
between ``tell`` and finishing: the instant at which the study result used to name both tied
checkpoints while finishing kept only the newest, so B's publication failed, for good.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from servers import stop_process_group

from mental_health_hpo.checkpointing import read_manifest
from mental_health_hpo.crash_points import CRASH_ENV, LOG_ENV, PAUSE_ENV, PAUSE_FILE_ENV

WORKER = Path(__file__).with_name("tie_worker.py")
WAITING = "Waiting for trial(s) [0] to be finished"
DEADLINE_S = 120


def _start(tmp_path: Path, name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"{name}.log").open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            f"sqlite:///{tmp_path / 'optuna.db'}",
            str(tmp_path / "study_tie"),
            str(tmp_path / f"published_{name}"),
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


def test_a_co_best_tie_in_a_taken_over_trial_publishes(tmp_path: Path) -> None:
    checkpoints = tmp_path / "study_tie" / "trial_0000" / "checkpoints"
    crashes, pause = tmp_path / "crashes.log", tmp_path / "paused"
    workers: list[subprocess.Popen[bytes]] = []
    try:
        a = _start(tmp_path, "a", {CRASH_ENV: "running_manifest_write@2", LOG_ENV: str(crashes)})
        workers.append(a)
        assert a.wait(timeout=DEADLINE_S) == -signal.SIGKILL, _log(tmp_path, "a")[-3000:]
        assert crashes.read_text().split() == ["running_manifest_write@2", str(a.pid)]
        assert len(read_manifest(checkpoints).history) == 1  # epoch 0 committed, epoch 1 not

        b_env = {PAUSE_ENV: "after_tell", PAUSE_FILE_ENV: str(pause), LOG_ENV: str(crashes)}
        b = _start(tmp_path, "b", b_env)
        workers.append(b)
        _wait_for(lambda: pause.exists() or b.poll() is not None, "B to pause after tell")
        assert b.poll() is None, _log(tmp_path, "b")[-3000:]
        tied = read_manifest(checkpoints)
        assert "Taking over trial 0" in _log(tmp_path, "b")
        assert [h.metrics["val_f1_macro"] for h in tied.history] == [0.111, 0.111]
        assert len(tied.checkpoints) == 2 and not tied.finished  # the tie, not finished yet

        c = _start(tmp_path, "c", {})
        workers.append(c)
        _wait_for(lambda: WAITING in _log(tmp_path, "c") or c.poll() is not None, "C's result")
        pause.unlink()  # B finishes the trial (and C, past the wait, derives the result)
        codes = [b.wait(timeout=DEADLINE_S), c.wait(timeout=DEADLINE_S)]
        assert codes == [0, 0], [_log(tmp_path, n)[-3000:] for n in ("b", "c")]
    finally:
        for worker in workers:
            stop_process_group(worker)

    finished = read_manifest(checkpoints)
    assert finished.finished
    newest = [r.id for r in finished.checkpoints]
    assert newest == [max(tied.checkpoints, key=lambda r: r.step).id]  # the metric never moved
    for name in ("b", "c"):
        lines = [x for x in _log(tmp_path, name).splitlines() if x.startswith("{")]
        outcome = json.loads(lines[-1])
        assert outcome == {"result": newest, "published": newest, "selected": newest}, name
    result = json.loads((tmp_path / "study_tie" / "study_result.json").read_text())
    assert result["best"]["checkpoint"]["checkpoint_ids"] == newest
