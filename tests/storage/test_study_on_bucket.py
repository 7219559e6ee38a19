"""A whole study with ``experiments_dir=s3://...`` (a real S3 server, real PostgreSQL, real
``kedro run``): checkpoints, manifests, trial records, the study result, retention's deletes, the
published best weights and the evaluation report are in the bucket; ``kedro run --pipeline
evaluate`` reads them from there; the project holds no folder named after the URL and no weights
(the local cache is gone once each trial ended). And a bucket study refuses a study database
whose locks hold on one host only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pytest
from conftest import copy_project

from mental_health_hpo.hpo.coordination import UnsafeCoordinationError, coordination_for
from mental_health_hpo.hpo.study import StudyConfig

SRC = Path(__file__).resolve().parents[2] / "src"
KEDRO = Path(sys.executable).parent / "kedro"


def _flat(params: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else key
        out += _flat(value, name) if isinstance(value, dict) else [f"{name}={value}"]
    return out


def _kedro_run(project: Path, pipeline: str, params: dict[str, Any]) -> None:
    done = subprocess.run(
        [str(KEDRO), "run", "--pipeline", pipeline, "--params", ",".join(_flat(params))],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=500,
        env={**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": str(SRC)},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]


def _bucket_keys(url: str) -> list[str]:
    fs = fsspec.filesystem("s3", use_listings_cache=False, skip_instance_cache=True)
    root = url.removeprefix("s3://")
    return sorted(k[len(root) + 1 :] for k in fs.find(root) if not k.endswith("/"))


def _read(url: str, key: str) -> Any:
    fs = fsspec.filesystem("s3", use_listings_cache=False, skip_instance_cache=True)
    return json.loads(fs.cat_file(f"{url.removeprefix('s3://')}/{key}"))


@pytest.mark.slow
@pytest.mark.postgres
def test_a_study_on_a_bucket_trains_publishes_and_evaluates_from_the_bucket(
    s3_url: str, postgres_url: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    project = copy_project(tmp_path / "project")
    name = f"bucket{uuid.uuid4().hex[:6]}"
    params = {
        "data_ingest": {"source": {"synthetic": {"n_posts": 40}}},
        "hpo": {
            "study": {
                "name": name,
                "storage": postgres_url,
                "experiments_dir": s3_url,
                "n_trials": 2,
                "pruner": "none",
                "sampler": "random",
                "torch_threads": 1,
            },
            "base": {
                "model": {"encoder": str(tiny_model_dir)},
                "trainer": {"epochs": 2, "batch_size": 8},
            },
        },
        "evaluate": {"experiments_dir": s3_url, "log_model": False},
    }
    _kedro_run(project, "hpo", params)
    keys = _bucket_keys(s3_url)
    study = f"study_{name}"
    for number in (0, 1):
        trial = f"{study}/trial_{number:04d}"
        assert f"{trial}/checkpoints/manifest.json" in keys, keys
        record = _read(s3_url, f"{trial}/trial.json")
        assert record["state"] == "completed" and record["mlflow_run_id"], record
    result = _read(s3_url, f"{study}/study_result.json")
    assert result["best"]["checkpoint"]["trial_dir"].startswith(f"{s3_url}/{study}/trial_")
    # Retention ran on the bucket: every trial finished, so no resume state is left there.
    assert not [k for k in keys if k.endswith("training_state.pt")], keys
    published = _read(s3_url, "best_checkpoint/published.json")
    assert published["checkpoint_ids"] == result["best"]["checkpoint"]["checkpoint_ids"]
    for checkpoint_id in published["checkpoint_ids"]:
        assert f"best_checkpoint/checkpoints/{checkpoint_id}/model.safetensors" in keys

    _kedro_run(project, "evaluate", {"evaluate": params["evaluate"]})
    report = _read(s3_url, f"{study}/evaluation_report.json")
    assert report["best_trial_id"] == published["trial_id"]
    assert report["evaluated_checkpoints"][0]["checkpoint_id"] in published["checkpoint_ids"]
    assert (project / "data/08_reporting/evaluation_report.json").exists()

    # Nothing of the study became a local folder; no weights stayed on the local disk.
    assert not list(project.rglob("s3:*")), "a folder named after the URL"
    assert not (project / "experiments").exists()
    assert not list(project.rglob("*.safetensors")), list(project.rglob("*.safetensors"))
    assert not list(project.rglob("checkpoints-cache")), "a trial's cache was left behind"


@pytest.mark.parametrize("storage", ["sqlite:///experiments/optuna.db", "journal:///x.log"])
def test_a_bucket_study_refuses_a_study_database_with_one_host_locks(
    storage: str, tmp_path: Path
) -> None:
    config = StudyConfig(storage=storage, experiments_dir="s3://hpo/experiments")
    with pytest.raises(UnsafeCoordinationError, match=r"PostgreSQL.*hpo\.study\.storage="):
        coordination_for(config, tmp_path)
    assert not list(tmp_path.iterdir()), "something was written before the refusal"
