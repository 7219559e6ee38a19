"""Three workers in three copies of the project, sharing only PostgreSQL, one `mlflow server`
and one experiments folder (what three machines share). One is SIGKILLed mid-trial, once that
trial has committed an epoch: it is held (``MH_HPO_PAUSE_AT``) as its second save starts, so it
cannot finish the trial first however loaded the machine is (polling its work log and killing
it raced the trial's end under load, as it did in test_bucket_clones).

Expected: exactly n finished trials; no trial trained by two processes at once; the killed
trial resumed from its checkpoint, in its own MLflow run, by a survivor; 0 duplicated
(run, key, step) points and no run left RUNNING; evaluate succeeds in a fourth copy that
trained nothing.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import copy_project
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from servers import MlflowServer, stop_process_group

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


N_TRIALS = 3
EPOCHS = 2
LEASE_S = 3.0
SRC = Path(__file__).resolve().parents[2] / "src"


def _flat(params: dict) -> str:
    flat: list[str] = []

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        else:
            flat.append(f"{prefix}={value}")

    walk("", params)
    return ",".join(flat)


def _clone(root: Path, tracking_url: str) -> Path:
    project = copy_project(root)
    (project / "conf" / "local" / "mlflow.yml").write_text(
        f"server:\n  mlflow_tracking_uri: {tracking_url}\n"
    )
    return project


def _kedro(
    project: Path, pipelines: str, params: dict, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    kedro = Path(sys.executable).parent / "kedro"
    log = (project / "kedro.log").open("ab")
    return subprocess.Popen(
        [str(kedro), "run", "--pipelines", pipelines, "--params", _flat(params)],
        cwd=project,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": str(SRC), **(env or {})},
    )


def _work(shared: Path) -> dict[int, list[dict]]:
    events: dict[int, list[dict]] = {}
    for log in sorted(shared.glob("study_dist/trial_*/logs/work.jsonl")):
        number = int(log.parts[-3].removeprefix("trial_"))
        events[number] = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    return events


def _committed(shared: Path, number: int) -> int:
    manifest = shared / f"study_dist/trial_{number:04d}/checkpoints/manifest.json"
    try:
        return len(json.loads(manifest.read_text())["history"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def test_three_clones_one_killed_mid_trial(
    postgres_url: str, mlflow_server: MlflowServer, tmp_path: Path, tiny_model_dir: Path
) -> None:
    tracking_url, mlflow_db = mlflow_server.url, mlflow_server.root / "server.db"
    storage = postgres_url
    shared = tmp_path / "shared_experiments"
    params = {
        "data_ingest": {"source": {"synthetic": {"n_posts": 40}}},
        "hpo": {
            "study": {
                "name": "dist",
                "storage": storage,
                "experiments_dir": str(shared),
                "n_trials": N_TRIALS,
                "lease_s": LEASE_S,
                "pruner": "none",
                "sampler": "random",
                "torch_threads": 1,
            },
            "base": {
                "model": {"encoder": str(tiny_model_dir)},
                "trainer": {"epochs": EPOCHS, "batch_size": 8},
            },
        },
        "evaluate": {"experiments_dir": str(shared), "log_model": False},
    }
    clones = [_clone(tmp_path / f"clone{i}", tracking_url) for i in range(4)]
    # kedro-mlflow's get-or-create of the experiment races when workers start together; the
    # deployments create it once before the workers start (deploy/compose.workers.yml: init).
    client = MlflowClient(tracking_url)
    if client.get_experiment_by_name("mental_health_hpo") is None:  # one server per session
        client.create_experiment("mental_health_hpo")
    # The victim (clone 0) is held where its second save starts: its first trial has committed
    # (or is committing) epoch 0 and is saving epoch 1, so it cannot end that trial before the kill.
    paused = tmp_path / "victim.paused"
    held = {"MH_HPO_PAUSE_AT": "checkpoint_stage@2", "MH_HPO_PAUSE_FILE": str(paused)}
    workers = [_kedro(clone, "hpo", params, held if i == 0 else None) for i, clone in
               enumerate(clones[:3])]  # fmt: skip
    victim = workers[0]
    try:
        deadline = time.monotonic() + 300
        while not paused.exists():
            assert time.monotonic() < deadline, "the victim never reached its second save"
            assert all(w.poll() is None for w in workers), "a worker ended before the kill"
            time.sleep(0.1)
        mine = [
            number
            for number, events in _work(shared).items()
            if [e for e in events if e["event"] == "epoch" and e["pid"] == victim.pid]
        ]
        assert len(mine) == 1, mine
        killed_trial = mine[0]
        while _committed(shared, killed_trial) < 1:  # a checkpoint to resume from
            assert time.monotonic() < deadline, "epoch 0 was never committed"
            time.sleep(0.1)
        run_before = json.loads(
            (shared / f"study_dist/trial_{killed_trial:04d}/trial.json").read_text()
        )
        os.killpg(victim.pid, signal.SIGKILL)
        killed_at = time.time()
        victim.wait()
        survivors = [w for w in workers if w is not victim]
        codes = [w.wait(timeout=400) for w in survivors]
        logs = [(c / "kedro.log").read_text()[-3000:] for c in clones[:3]]
        assert codes == [0, 0], logs

        # Exactly n finished trials, each finished once.
        study = optuna.load_study(study_name="dist", storage=storage)
        trials = study.get_trials(deepcopy=False)
        assert len(trials) == N_TRIALS
        assert all(t.state is TrialState.COMPLETE for t in trials), [t.state for t in trials]

        # No trial trained by two processes at once; the killed one resumed by a survivor.
        work = _work(shared)
        for number, events in work.items():
            pids = [e["pid"] for e in events]
            if number != killed_trial:
                assert len(set(pids)) == 1, (number, events)
        after = [e for e in work[killed_trial] if e["pid"] != victim.pid]
        assert after and all(e["at"] > killed_at for e in after), work[killed_trial]
        assert {e["pid"] for e in after} <= {w.pid for w in survivors}
        assert after[0]["event"] == "started" and after[0]["resumed"] is True
        record = json.loads(
            (shared / f"study_dist/trial_{killed_trial:04d}/trial.json").read_text()
        )
        assert record["resumed_from"] is not None, "the survivor restarted it from scratch"
        assert record["mlflow_run_id"] == run_before["mlflow_run_id"], "a new MLflow run"
        resumed_after_s = after[0]["at"] - killed_at
        assert resumed_after_s < 2 * LEASE_S + 5, resumed_after_s

        # Evaluate in a copy that trained nothing: it derives the result from the storage.
        fourth = _kedro(clones[3], "hpo,evaluate", params)
        assert fourth.wait(timeout=400) == 0, (clones[3] / "kedro.log").read_text()[-3000:]
        assert (clones[3] / "data/08_reporting/evaluation_report.json").exists()
        assert not list((clones[3] / "data").rglob("work.jsonl"))
        assert {e["pid"] for events in _work(shared).values() for e in events}.isdisjoint(
            {fourth.pid}
        ), "the fourth copy trained"
    finally:
        for worker in workers:
            stop_process_group(worker)

    with sqlite3.connect(mlflow_db) as db:  # this study's runs (the server serves the session)
        ours = "SELECT run_uuid FROM tags WHERE key = 'study_id' AND value = 'dist'"
        duplicated = db.execute(
            f"SELECT run_uuid, key, step, COUNT(*) FROM metrics WHERE run_uuid IN ({ours}) "
            "GROUP BY run_uuid, key, step HAVING COUNT(*) > 1"
        ).fetchall()
        running = db.execute(
            f"SELECT name, status FROM runs WHERE status = 'RUNNING' AND run_uuid IN ({ours})"
        ).fetchall()
        names = {row[0] for row in db.execute(f"SELECT name FROM runs WHERE run_uuid IN ({ours})")}
        parents = db.execute(
            "SELECT COUNT(*) FROM tags WHERE key = 'hpo.study_parent' AND value = 'dist'"
        ).fetchone()[0]
        sessions = db.execute(
            f"SELECT COUNT(*) FROM tags WHERE key = 'mlflow.parentRunId' AND run_uuid IN ({ours})"
        ).fetchone()[0]
    assert duplicated == []
    assert running == []
    assert parents == 1, "every worker nests under one study-level parent run"
    assert {f"dist.trial_{n:04d}" for n in range(N_TRIALS)} <= names
    assert sessions >= N_TRIALS + 4, "trial runs and the workers' session runs nest under it"
