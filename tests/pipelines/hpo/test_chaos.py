"""Nothing lost, nothing silent: one study killed with SIGKILL at four exact instants, then run
to completion, ends as an unbroken run of the same config and seed.

Real processes (forked from chaos_worker.py, each a KedroSession running the hpo pipeline
against a real ``mlflow server``) kill themselves at named crash points
(``mental_health_hpo.crash_points``), one per start, in the order a study reaches them:

1. ``running_manifest_write``: the manifest of trial 0's second epoch is staged (its temp file
   written), not committed yet;
2. ``after_tell``: trial 0, resumed from its first epoch's checkpoint, was told to Optuna and
   not finalized;
3. ``buffered_before_run``: trial 1 started while the tracking server was unreachable (its
   port closed), so its run does not exist; its first epoch went to the outage buffer;
4. ``publish_swap``: the best checkpoint is staged and the previous one moved away, not swapped in;
5. ``session_run_created`` and 6. ``before_worker_lease``: killed during start-up, before the
   worker held a lease: kedro-mlflow's session run exists (tagged with the study and its owner
   from its creation), nothing else of the worker does.

Each kill has its own assertion block (the process died at that point, and the next start dealt
with what it left); after the last, clean start: no duplicated (run, key, step) metric point,
no run left RUNNING, no temp file under ``experiments/`` (nor beside the published folder), and
the trials' params and values and the study's best equal the unbroken run's.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from conftest import REPO_ROOT, copy_project
from servers import MlflowServer, OutageProxy

import mental_health_hpo
from mental_health_hpo.crash_points import CRASH_ENV, LOG_ENV, PAUSE_ENV, PAUSE_FILE_ENV
from mental_health_hpo.tracking.abandoned import OWNER_TAG
from mental_health_hpo.tracking.pending import PendingRuns, is_pending
from mental_health_hpo.workspace.layout import (
    MLFLOW_PENDING_NAME,
    PublishedLayout,
    StudyLayout,
    is_temp_name,
)

pytestmark = pytest.mark.slow

STUDY = "chaos"
N_TRIALS, EPOCHS = 3, 2
RUN_DEADLINE_S = 300.0
WORKER = Path(__file__).with_name("chaos_worker.py")


def _params(tiny_model_dir: Path) -> dict[str, Any]:
    return {
        "data_ingest": {"source": {"synthetic": {"n_posts": 40}}},
        "hpo": {
            "study": {"name": STUDY, "n_trials": N_TRIALS, "pruner": "none", "torch_threads": 1},
            "base": {
                "model": {"encoder": str(tiny_model_dir)},
                "trainer": {"epochs": EPOCHS, "batch_size": 8},
            },
        },
    }


@dataclass
class Run:
    pid: int
    name: str
    status: Path
    log: Path


class Runs:
    """Starts hpo runs through the fork server and waits for them to end."""

    def __init__(self, spawn: Callable[..., subprocess.Popen[str]], root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.crash_log = root / "crashes.log"
        env = {**os.environ, "PYTHONPATH": str(Path(mental_health_hpo.__file__).parents[1])}
        env["TQDM_DISABLE"] = "1"
        self.server = spawn(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def start(self, name: str, project: Path, params: dict[str, Any], **env: str) -> Run:
        run = Run(0, name, self.root / f"{name}.status", self.root / f"{name}.log")
        request = {
            "project": str(project),
            "params": params,
            "env": {LOG_ENV: str(self.crash_log), **env},
            "log": str(run.log),
            "status": str(run.status),
        }
        assert self.server.stdin is not None and self.server.stdout is not None
        self.server.stdin.write(json.dumps(request) + "\n")
        self.server.stdin.flush()
        line = ""
        while not line.startswith("pid "):  # anything else the server printed is not ours
            line = self.server.stdout.readline()
            assert line, "the fork server ended"
        run.pid = int(line.split()[1])
        return run

    def wait(self, run: Run, until: Callable[[], bool] = lambda: False) -> str:
        """``exit <code>``, ``killed``, or ``until`` (when ``until()`` became true first)."""
        deadline = time.monotonic() + RUN_DEADLINE_S
        while _alive(run.pid):
            if until():
                return "until"
            assert self.server.poll() is None, "the fork server died"
            assert time.monotonic() < deadline, f"{run.name} still runs: {_tail(run.log)}"
            time.sleep(0.1)
        return f"exit {run.status.read_text()}" if run.status.exists() else "killed"

    def last_crash(self) -> str:
        lines = self.crash_log.read_text().splitlines() if self.crash_log.exists() else []
        return lines[-1].split()[0] if lines else ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def _chaos_project(root: Path, tracking_url: str) -> Path:
    """A project copy tracking to the real server, in an experiment of its own."""
    project = copy_project(root)
    config = yaml.safe_load((REPO_ROOT / "conf" / "base" / "mlflow.yml").read_text())
    config["server"]["mlflow_tracking_uri"] = tracking_url
    config["tracking"]["experiment"]["name"] = f"chaos-{root.parent.name}"
    (project / "conf" / "local" / "mlflow.yml").write_text(yaml.safe_dump(config))
    return project


def _study(project: Path) -> optuna.Study:
    return optuna.load_study(
        study_name=STUDY, storage=f"sqlite:///{project / 'experiments' / 'optuna.db'}"
    )


def _trial_record(study_dir: Path, number: int) -> dict[str, Any]:
    return dict(json.loads(StudyLayout(study_dir).trial(number).record.read_text()))


def _history(study_dir: Path, number: int) -> list[dict[str, Any]]:
    manifest = StudyLayout(study_dir).trial(number).manifest
    return list(json.loads(manifest.read_text())["history"])


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if is_temp_name(p.name) or ".tmp" in p.name]


def _mlflow(server: MlflowServer, project: Path) -> sqlite3.Connection:
    """The server's own store, read directly: every row, as MLflow keeps it."""
    connection = sqlite3.connect(server.root / "server.db")
    name = yaml.safe_load((project / "conf" / "local" / "mlflow.yml").read_text())["tracking"][
        "experiment"
    ]["name"]
    connection.execute(
        "CREATE TEMP VIEW chaos_runs AS SELECT r.* FROM runs r JOIN experiments e "
        f"ON e.experiment_id = r.experiment_id WHERE e.name = '{name}' "
        "AND r.lifecycle_stage = 'active'"
    )
    return connection


@pytest.fixture
def runs(tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]) -> Runs:
    """The fork server; asked for before ``mlflow_server``, so its imports overlap the start."""
    return Runs(spawn, tmp_path / "runs")


def test_a_study_killed_at_four_exact_points_ends_as_an_unbroken_one(
    runs: Runs,
    tmp_path: Path,
    tiny_model_dir: Path,
    mlflow_server: MlflowServer,
    request: pytest.FixtureRequest,
) -> None:
    started = time.monotonic()
    params = _params(tiny_model_dir)
    unbroken_project = copy_project(tmp_path / "unbroken")  # SQLite tracking, never killed
    # The killed study reaches the server through a relay that stages the outage.
    proxy = OutageProxy(mlflow_server.port).open()
    request.addfinalizer(proxy.close)
    project = _chaos_project(tmp_path / "chaos", proxy.url)
    study_dir = StudyLayout.of(project / "experiments", STUDY).path
    published = PublishedLayout(project / "data" / "06_models" / "best_checkpoint")
    # Beside the killed one, in a project of its own (one torch thread each).
    unbroken = runs.start("unbroken", unbroken_project, params)

    # --- 1. killed inside a running trial's manifest write (trial 0, 2nd epoch) ------------
    run = runs.start("manifest", project, params, **{CRASH_ENV: "running_manifest_write@2"})
    assert runs.wait(run) == "killed", _tail(run.log)
    assert runs.last_crash() == "running_manifest_write@2"
    checkpoints = StudyLayout(study_dir).trial(0).checkpoints
    assert [p for p in checkpoints.iterdir() if p.name.startswith(".tmp-manifest.json")]
    assert len(_history(study_dir, 0)) == 1  # the second epoch was never committed

    # --- 2. killed right after tell (trial 0, resumed from its 1st epoch) -------
    run = runs.start("tell", project, params, **{CRASH_ENV: "after_tell"})
    assert runs.wait(run) == "killed", _tail(run.log)
    assert runs.last_crash() == "after_tell@1"
    assert _temp_files(checkpoints) == []  # the resumed trial swept the torn write
    assert [h["epoch"] for h in _history(study_dir, 0)] == [0, 1]
    assert _study(project).trials[0].state is optuna.trial.TrialState.COMPLETE
    assert _trial_record(study_dir, 0)["state"] == "finishing"

    # --- 3. killed before trial 1's run exists, in an outage of the tracking server ----------
    pause = tmp_path / "paused"
    run = runs.start(
        "outage",
        project,
        params,
        **{PAUSE_ENV: "before_trial_run", PAUSE_FILE_ENV: str(pause)},
        **{CRASH_ENV: "buffered_before_run"},
    )
    assert runs.wait(run, until=pause.exists) == "until", _tail(run.log)
    # The next start finished trial 0 at once (its worker was dead), not a lease period later.
    assert _trial_record(study_dir, 0)["state"] == "completed"
    proxy.close()  # the tracking server is unreachable: connection refused
    pause.unlink()
    assert runs.wait(run) == "killed", _tail(run.log)
    assert runs.last_crash() == "buffered_before_run@1"
    ref = _trial_record(study_dir, 1)["mlflow_run_id"]
    assert is_pending(ref), ref  # no run: a pending reference, its 1st epoch buffered

    # --- 4. killed during the best checkpoint's publication ---------------------------------
    published.path.mkdir(parents=True)
    (published.path / "weights.safetensors").write_bytes(b"previous best")
    proxy.open()
    run = runs.start("publish", project, params, **{CRASH_ENV: "publish_swap"})
    assert runs.wait(run) == "killed", _tail(run.log)
    assert runs.last_crash() == "publish_swap@1"
    assert not published.path.exists()  # the old one moved away, the new one not in place
    assert {previous for _, _, previous in published.leftovers()} == {False, True}

    # --- 5, 6. killed twice during start-up, before the worker held a lease -----------------
    startup_pids = []
    for point in ("session_run_created", "before_worker_lease"):
        run = runs.start(point, project, params, **{CRASH_ENV: point})
        assert runs.wait(run) == "killed", _tail(run.log)
        assert runs.last_crash() == f"{point}@1"
        startup_pids.append(run.pid)
    with _mlflow(mlflow_server, project) as db:
        owners = db.execute(
            "SELECT t.value FROM chaos_runs c JOIN tags t ON t.run_uuid = c.run_uuid "
            "WHERE c.status = 'RUNNING' AND c.name = 'hpo' AND t.key = ? AND c.run_uuid IN "
            "(SELECT run_uuid FROM tags WHERE key = 'study_id' AND value = ?)",
            (OWNER_TAG, STUDY),
        ).fetchall()
    owner_pids = {int(value.split(":")[1]) for (value,) in owners}
    assert set(startup_pids) <= owner_pids  # each left its session run, recognisable as ours

    # --- the next start, unbroken -----------------------------------------------------------
    run = runs.start("last", project, params)
    assert runs.wait(run) == "exit 0", _tail(run.log)
    assert runs.wait(unbroken) == "exit 0", _tail(unbroken.log)

    whole, chaos = _study(unbroken_project), _study(project)
    assert [t.state for t in chaos.trials] == [optuna.trial.TrialState.COMPLETE] * N_TRIALS
    assert [t.params for t in chaos.trials] == [t.params for t in whole.trials]
    assert [t.value for t in chaos.trials] == [t.value for t in whole.trials]
    assert (chaos.best_trial.number, chaos.best_value) == (
        whole.best_trial.number,
        whole.best_value,
    )

    with _mlflow(mlflow_server, project) as db:
        duplicated = db.execute(
            "SELECT c.name, m.key, m.step, COUNT(*) FROM metrics m JOIN chaos_runs c "
            "ON c.run_uuid = m.run_uuid GROUP BY c.run_uuid, m.key, m.step HAVING COUNT(*) > 1"
        ).fetchall()
        running = db.execute("SELECT name FROM chaos_runs WHERE status = 'RUNNING'").fetchall()
        trial_runs = db.execute(
            "SELECT c.name, c.status, COUNT(m.step) FROM chaos_runs c LEFT JOIN metrics m "
            "ON m.run_uuid = c.run_uuid AND m.key = 'val_f1_macro' "
            f"WHERE c.name LIKE '{STUDY}.trial_%' GROUP BY c.run_uuid ORDER BY c.name"
        ).fetchall()
    assert duplicated == []
    assert running == []
    expected = [(f"{STUDY}.trial_{n:04d}", "FINISHED", EPOCHS) for n in range(N_TRIALS)]
    assert trial_runs == expected  # one run per trial, every epoch in it: nothing lost

    buffers = StudyLayout(study_dir).mlflow_buffer("any").parent
    assert list(buffers.glob("*.jsonl")) == []  # no buffered point waits for a dead worker
    pending = PendingRuns(buffers / MLFLOW_PENDING_NAME)
    assert pending.runs_to_create() == [] and pending.updates() == []
    assert _temp_files(project / "experiments") == []
    assert published.leftovers() == [] and _temp_files(published.path.parent) == []
    record = json.loads(published.record.read_text())
    assert record["trial_number"] == whole.best_trial.number
    print(f"chaos test: {time.monotonic() - started:.0f} s")
