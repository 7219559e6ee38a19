"""Ctrl-C on ``kedro run``: the message says what was saved and how to continue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mental_health_hpo.checkpointing._manifest import (
    CheckpointRecord,
    Manifest,
    write_manifest,
)
from mental_health_hpo.interrupt import interrupted_summary

REPO_ROOT = Path(__file__).resolve().parents[1]


def _trial(study: Path, name: str, state: str, epochs: int = 0) -> Path:
    folder = study / name
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "trial.json").write_text(json.dumps({"state": state}))
    if epochs:
        records = [
            CheckpointRecord(f"ckpt-e{e:04d}", e, 10 * e, {"f1": 0.1}, "full", {}, "")
            for e in range(epochs)
        ]
        write_manifest(folder / "checkpoints", Manifest(metric_name="f1", checkpoints=records))
    return folder


def test_summary_names_finished_trials_and_the_resume_checkpoint(tmp_path: Path) -> None:
    started = time.time() - 5
    study = tmp_path / "study_demo"
    _trial(study, "trial_0000", "completed", epochs=1)
    resumed = _trial(study, "trial_0001", "running", epochs=2)
    _trial(study, "trial_0002", "preparing")
    old = tmp_path / "study_old"
    _trial(old, "trial_0000", "completed")
    for path in old.rglob("*"):
        os.utime(path, (started - 100, started - 100))

    text = interrupted_summary(tmp_path, started, "kedro run --pipelines hpo")
    assert f"{study}: 1 of 3 started trials finished" in text
    assert f"trial_0001: running, resumes from checkpoint {resumed}/checkpoints/ckpt-e0001" in text
    assert "trial_0002: preparing, no committed checkpoint yet (restarts at epoch 0)" in text
    assert "study_old" not in text
    assert text.endswith("no metric is logged twice)")
    assert "To continue, run the same command again: kedro run --pipelines hpo" in text


def test_summary_when_no_study_was_written(tmp_path: Path) -> None:
    text = interrupted_summary(tmp_path / "experiments", time.time(), "kedro run")
    assert f"No study was written to {tmp_path / 'experiments'} by this run." in text


def test_summary_of_a_study_in_a_bucket_says_where_it_is() -> None:
    text = interrupted_summary("s3://hpo/experiments", time.time(), "kedro run")
    assert "The study is in s3://hpo/experiments" in text
    assert "No study was written" not in text and not Path("s3:").exists()


@pytest.mark.slow
def test_ctrl_c_on_kedro_run_hpo(kedro_project: Path, tiny_model_dir: Path) -> None:
    """The study lives where the run's parameters put it (a deployment's shared folder), not
    in the project's ``experiments/``: the message reads that folder."""
    shared = kedro_project / "shared" / "experiments"
    params = ",".join(
        [
            f"hpo.study.experiments_dir={shared}",
            "data_ingest.source.synthetic.n_posts=40",
            "hpo.study.n_trials=2",
            "hpo.study.pruner=none",
            "hpo.study.name=ctrlc",
            f"hpo.base.model.encoder={tiny_model_dir}",
            "hpo.base.trainer.epochs=6",
            "hpo.base.trainer.batch_size=8",
        ]
    )
    kedro = Path(sys.executable).parent / "kedro"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "TQDM_DISABLE": "1"}
    process = subprocess.Popen(
        [str(kedro), "run", "--pipelines", "hpo", "--params", params],
        cwd=kedro_project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=env,
    )
    manifest = shared / "study_ctrlc/trial_0000/checkpoints/manifest.json"
    try:
        deadline = time.monotonic() + 240
        while not manifest.exists():
            assert process.poll() is None, process.communicate()[1].decode()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint was committed in time"
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground group
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    stderr = err.decode()
    assert process.returncode == 130, stderr[-3000:]
    assert "Aborted!" not in stderr
    assert "Interrupted. Everything committed before the interrupt is kept." in stderr
    assert f"{shared / 'study_ctrlc'}: 0 of 1 started trials finished" in stderr
    assert f"trial_0000: running, resumes from checkpoint {shared / 'study_ctrlc'}" in stderr
    assert "To continue, run the same command again:" in stderr and "--pipelines hpo" in stderr
