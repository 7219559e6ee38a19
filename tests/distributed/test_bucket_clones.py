"""Two copies of the project that share only PostgreSQL, one `mlflow server` and a bucket (a real
S3 server), each with its own local cache: what two machines without a shared filesystem share.
One is SIGKILLed mid-trial, once that trial has committed an epoch to the bucket: it is held
(``MH_HPO_PAUSE_AT``) as its second save starts, so it cannot finish the trial first however
loaded the machine is (polling its work log and killing it raced the trial's end under load).

Expected: the other takes the trial over from the bucket (its own cache never held it) and
resumes it from the committed checkpoint in the same MLflow run; exactly n trials; 0 duplicated
(run, key, step) metric points; no MLflow run left RUNNING; no folder named after the URL. Then
the study as a bucket holds it: manifests, trial records, the study result, retention's deletes
and the published best weights are in the bucket, and ``kedro run --pipeline evaluate`` reads
them from there and writes its report there (one whole study on a bucket serves both checks).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import fsspec
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


def _flat(params: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else key
        out += _flat(value, name) if isinstance(value, dict) else [f"{name}={value}"]
    return out


def _clone(root: Path, tracking_url: str) -> Path:
    project = copy_project(root)
    (project / "conf" / "local" / "mlflow.yml").write_text(
        f"server:\n  mlflow_tracking_uri: {tracking_url}\n"
    )
    return project


def _kedro(
    project: Path, params: dict[str, Any], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    kedro = Path(sys.executable).parent / "kedro"
    log = (project / "kedro.log").open("ab")
    return subprocess.Popen(
        [str(kedro), "run", "--pipelines", "hpo", "--params", ",".join(_flat(params))],
        cwd=project,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": str(SRC), **(env or {})},
    )


def _work(clone: Path, study: str) -> dict[int, list[dict[str, Any]]]:
    """Which process of this clone trained which epoch: the clone's own (local) work logs."""
    events: dict[int, list[dict[str, Any]]] = {}
    for log in sorted(clone.glob(f"data/cache/{study}/trial_*/logs/work.jsonl")):
        number = int(log.parts[-3].removeprefix("trial_"))
        events[number] = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    return events


def _bucket_keys(url: str) -> list[str]:
    fs = fsspec.filesystem("s3", use_listings_cache=False, skip_instance_cache=True)
    root = url.removeprefix("s3://")
    return sorted(k[len(root) + 1 :] for k in fs.find(root) if not k.endswith("/"))


def _bucket_json(url: str, key: str) -> Any:
    fs = fsspec.filesystem("s3", use_listings_cache=False, skip_instance_cache=True)
    try:
        return json.loads(fs.cat_file(f"{url.removeprefix('s3://')}/{key}"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def test_two_clones_share_a_bucket_and_one_takes_over_the_others_trial(
    postgres_url: str,
    mlflow_server: MlflowServer,
    s3_url: str,
    tmp_path: Path,
    tiny_model_dir: Path,
) -> None:
    tracking_url, mlflow_db = mlflow_server.url, mlflow_server.root / "server.db"
    name = f"bclones{uuid.uuid4().hex[:6]}"
    study = f"study_{name}"
    params = {
        "data_ingest": {"source": {"synthetic": {"n_posts": 40}}},
        "hpo": {
            "study": {
                "name": name,
                "storage": postgres_url,
                "experiments_dir": s3_url,
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
        "evaluate": {"experiments_dir": s3_url, "log_model": False},
    }
    clones = [_clone(tmp_path / f"clone{i}", tracking_url) for i in range(2)]
    client = MlflowClient(tracking_url)
    if client.get_experiment_by_name("mental_health_hpo") is None:  # one server per session
        client.create_experiment("mental_health_hpo")
    # The victim (clone 0) is held where its second save starts: its first trial has committed
    # epoch 0 and is saving epoch 1, so it cannot end that trial before the kill.
    paused = tmp_path / "victim.paused"
    held = {"MH_HPO_PAUSE_AT": "checkpoint_stage@2", "MH_HPO_PAUSE_FILE": str(paused)}
    workers = [_kedro(clones[0], params, held), _kedro(clones[1], params)]
    victim = workers[0]
    try:
        deadline = time.monotonic() + 300
        while not paused.exists():
            assert time.monotonic() < deadline, "the victim never reached its second save"
            assert all(w.poll() is None for w in workers), "a worker ended before the kill"
            time.sleep(0.2)
        mine = [
            number
            for number, events in _work(clones[0], study).items()
            if [e for e in events if e["event"] == "epoch" and e["pid"] == victim.pid]
        ]
        assert len(mine) == 1, mine
        killed_trial = mine[0]
        key = f"{study}/trial_{killed_trial:04d}/checkpoints/manifest.json"
        while not (_bucket_json(s3_url, key) or {}).get("checkpoints"):  # resumable from there
            assert time.monotonic() < deadline, "epoch 0 never reached the bucket"
            time.sleep(0.2)
        assert killed_trial is not None
        trial_key = f"{study}/trial_{killed_trial:04d}/trial.json"
        run_before = _bucket_json(s3_url, trial_key)
        os.killpg(victim.pid, signal.SIGKILL)
        killed_at = time.time()
        victim.wait()
        survivor = next(w for w in workers if w is not victim)
        survivor_clone = clones[workers.index(survivor)]
        code = survivor.wait(timeout=400)
        assert code == 0, (survivor_clone / "kedro.log").read_text()[-4000:]

        # Exactly n finished trials.
        trials = optuna.load_study(study_name=name, storage=postgres_url).get_trials()
        assert len(trials) == N_TRIALS
        assert all(t.state is TrialState.COMPLETE for t in trials), [t.state for t in trials]

        # The survivor took the killed trial over from the bucket, resumed, same MLflow run.
        taken = _work(survivor_clone, study)[killed_trial]
        assert taken[0]["event"] == "started" and taken[0]["resumed"] is True, taken
        assert taken[0]["at"] > killed_at and taken[0]["pid"] == survivor.pid
        record = _bucket_json(s3_url, trial_key)
        assert record["state"] == "completed"
        assert record["resumed_from"] is not None, "the survivor restarted it from scratch"
        assert record["mlflow_run_id"] == run_before["mlflow_run_id"], "a new MLflow run"
        for clone in clones:
            assert not list(clone.rglob("s3:*")), "a folder named after the URL"
        # The survivor's cache held each trial only while it ran it (the victim's stays: killed).
        assert not list(survivor_clone.rglob("checkpoints-cache"))
        assert not list(survivor_clone.rglob("*.safetensors")), "weights left on local disk"
    finally:
        for worker in workers:
            stop_process_group(worker)

    with sqlite3.connect(mlflow_db) as db:  # this study's runs (the server serves the session)
        ours = f"SELECT run_uuid FROM tags WHERE key = 'study_id' AND value = '{name}'"
        duplicated = db.execute(
            f"SELECT run_uuid, key, step, COUNT(*) FROM metrics WHERE run_uuid IN ({ours}) "
            "GROUP BY run_uuid, key, step HAVING COUNT(*) > 1"
        ).fetchall()
        running = db.execute(
            f"SELECT name, status FROM runs WHERE status = 'RUNNING' AND run_uuid IN ({ours})"
        ).fetchall()
        steps = db.execute(
            f"SELECT COUNT(*) FROM metrics WHERE run_uuid IN ({ours}) AND key LIKE 'val_%'"
        ).fetchone()[0]
    assert steps > 0, "no metric reached MLflow: the check below would prove nothing"
    assert duplicated == []
    assert running == []

    # The study as the bucket holds it: every trial's manifest and record, the study result,
    # retention's deletes (no resume state left once every trial finished), the published best.
    keys = _bucket_keys(s3_url)
    for number in range(N_TRIALS):
        trial = f"{study}/trial_{number:04d}"
        assert f"{trial}/checkpoints/manifest.json" in keys, keys
        record = _bucket_json(s3_url, f"{trial}/trial.json")
        assert record["state"] == "completed" and record["mlflow_run_id"], record
    result = _bucket_json(s3_url, f"{study}/study_result.json")
    assert result["best"]["checkpoint"]["trial_dir"].startswith(f"{s3_url}/{study}/trial_")
    assert not [k for k in keys if k.endswith("training_state.pt")], keys
    published = _bucket_json(s3_url, "best_checkpoint/published.json")
    assert published["checkpoint_ids"] == result["best"]["checkpoint"]["checkpoint_ids"]
    for checkpoint_id in published["checkpoint_ids"]:
        assert f"best_checkpoint/checkpoints/{checkpoint_id}/model.safetensors" in keys

    # evaluate, on the survivor's clone, reads all of it from the bucket and reports there.
    evaluate = subprocess.run(
        [
            str(Path(sys.executable).parent / "kedro"),
            "run",
            "--pipeline",
            "evaluate",
            "--params",
            ",".join(_flat({"evaluate": params["evaluate"]})),
        ],
        cwd=survivor_clone,
        capture_output=True,
        text=True,
        timeout=500,
        env={**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": str(SRC)},
    )
    assert evaluate.returncode == 0, evaluate.stdout[-2000:] + evaluate.stderr[-4000:]
    report = _bucket_json(s3_url, f"{study}/evaluation_report.json")
    assert report["best_trial_id"] == published["trial_id"]
    assert report["evaluated_checkpoints"][0]["checkpoint_id"] in published["checkpoint_ids"]
    assert (survivor_clone / "data/08_reporting/evaluation_report.json").exists()
    assert not list(survivor_clone.rglob("s3:*")), "a folder named after the URL"
    assert not (survivor_clone / "experiments").exists()
    assert not list(survivor_clone.rglob("*.safetensors")), "weights left on local disk"
