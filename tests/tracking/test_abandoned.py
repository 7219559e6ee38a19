"""Runs left RUNNING by dead processes are ended on the next start; live ones are left alone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

import mental_health_hpo
from mental_health_hpo.tracking import end_abandoned_runs
from mental_health_hpo.tracking.abandoned import (
    END_REASON_TAG,
    HEARTBEAT_TAG,
    OWNER_TAG,
    _start_ticks,
    owner_id,
)

HOST = socket.gethostname()


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(done.stdout)


def _run(client: MlflowClient, experiment: str, name: str, **tags: str) -> str:
    return str(client.create_run(experiment, run_name=name, tags=tags).info.run_id)


def test_only_runs_whose_process_is_gone_are_ended_with_a_reason(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[Any]]
) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("e")
    dead = f"{HOST}:{_dead_pid()}:1"
    sleeper = spawn([sys.executable, "-c", "import time; time.sleep(120)"])
    time.sleep(0.2)
    alive = f"{HOST}:{sleeper.pid}:{_start_ticks(sleeper.pid)}"
    now_ms = int(time.time() * 1000)
    parent = _run(client, experiment, "hpo", **{OWNER_TAG: dead})  # never claimed by study tag
    runs = {
        "killed_trial": _run(client, experiment, "t0", study_id="s", **{
            OWNER_TAG: dead, "mlflow.parentRunId": parent}),
        "no_owner": _run(client, experiment, "t1", study_id="s"),
        "earlier_session": _run(client, experiment, "t2", study_id="s", **{OWNER_TAG: owner_id()}),
        "reused_pid": _run(client, experiment, "t3", study_id="s", **{
            OWNER_TAG: f"{HOST}:{sleeper.pid}:1"}),
        "stale_other_host": _run(client, experiment, "t4", study_id="s", **{
            OWNER_TAG: "elsewhere:1:1", HEARTBEAT_TAG: str(now_ms - 7200_000)}),
        "live_process": _run(client, experiment, "t5", study_id="s", **{OWNER_TAG: alive}),
        "busy_other_host": _run(client, experiment, "t6", study_id="s", **{
            OWNER_TAG: "elsewhere:1:1", HEARTBEAT_TAG: str(now_ms)}),
        "live_listed": _run(client, experiment, "t7", study_id="s", **{OWNER_TAG: owner_id()}),
        "other_study": _run(client, experiment, "t8", study_id="other", **{OWNER_TAG: dead}),
        "finished": _run(client, experiment, "t9", study_id="s", **{OWNER_TAG: dead}),
    }  # fmt: skip
    client.set_terminated(runs["finished"], status="FINISHED")

    ended = end_abandoned_runs(client, experiment, "s", live_run_ids=[runs["live_listed"]])

    expected = {parent} | {
        runs[k]
        for k in ("killed_trial", "no_owner", "earlier_session", "reused_pid", "stale_other_host")
    }
    assert set(ended) == expected
    for run_id in expected:
        run = client.get_run(run_id)
        assert run.info.status == "KILLED"
        assert run.data.tags[END_REASON_TAG].startswith("abandoned: ")
    for key in ("live_process", "busy_other_host", "live_listed", "other_study"):
        assert client.get_run(runs[key]).info.status == "RUNNING", key
    assert client.get_run(runs["finished"]).info.status == "FINISHED"
    assert end_abandoned_runs(client, experiment, "s", [runs["live_listed"]]) == []  # idempotent


@pytest.mark.slow
def test_a_sigkilled_trial_run_is_ended_on_the_next_start(
    tmp_path: Path, spawn: Callable[..., subprocess.Popen[Any]]
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("e")
    parent = client.create_run(experiment, run_name="hpo").info.run_id
    marker = tmp_path / "run_id"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from mlflow.tracking import MlflowClient\n"
        "from mental_health_hpo.tracking import MetricsBuffer, TrialTracker\n"
        "uri, experiment, parent, marker = sys.argv[1:5]\n"
        "tracker = TrialTracker(MlflowClient(uri), experiment, MetricsBuffer(Path(marker + '.b')),"
        " parent_run_id=parent)\n"
        "tracker.claim(parent, 's')\n"
        "run_id = tracker.start(None, 'trial_0000', {'a': 1}, {'study_id': 's'})\n"
        "Path(marker).write_text(run_id)\n"
        "time.sleep(120)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(mental_health_hpo.__file__).parents[1])}
    child = spawn([sys.executable, "-c", script, uri, experiment, parent, str(marker)], env=env)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert child.poll() is None and time.monotonic() < deadline, "the child never started"
        time.sleep(0.2)
    trial_run = marker.read_text()
    assert end_abandoned_runs(client, experiment, "s", []) == []  # its process is alive
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)

    ended = end_abandoned_runs(client, experiment, "s", [])

    assert set(ended) == {parent, trial_run}
    for run_id in ended:
        run = client.get_run(run_id)
        assert run.info.status == "KILLED" and "is gone" in run.data.tags[END_REASON_TAG]
