"""End to end: `kedro run --pipeline hpo` on a tiny model, through KedroSession and as a real
process killed with SIGKILL and rerun."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import run_pipeline

pytestmark = pytest.mark.slow


def _params(tiny_model_dir: Path, n_trials: int, epochs: int) -> dict:
    return {
        "data_ingest": {"source": {"synthetic": {"n_posts": 40}}},
        "hpo": {
            "study": {"n_trials": n_trials, "pruner": "none", "name": "e2e"},
            "base": {
                "model": {"encoder": str(tiny_model_dir)},
                "trainer": {"epochs": epochs, "batch_size": 8},
            },
        },
    }


def _metric_rows(db: Path) -> list[tuple[str, str, str, int]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT r.name, m.key, m.run_uuid, m.step FROM metrics m "
            "JOIN runs r ON r.run_uuid = m.run_uuid WHERE r.name LIKE 'e2e.trial_%'"
        ).fetchall()


def _assert_each_epoch_logged_once(db: Path, trials: int, epochs: int) -> None:
    rows = [(name, key, step) for name, key, _, step in _metric_rows(db) if key == "val_f1_macro"]
    assert len(rows) == len(set(rows)), "a metric step was logged twice"
    per_trial: dict[str, set[int]] = {}
    for name, _, step in rows:
        per_trial.setdefault(name, set()).add(step)
    assert len(per_trial) == trials
    assert all(len(steps) == epochs for steps in per_trial.values()), per_trial


def _assert_retention(study_dir: Path, metric: str = "val_f1_macro") -> None:
    """Finished trials keep only their best (and co-best) weights, nothing to resume from."""
    for trial in sorted(study_dir.glob("trial_*")):
        manifest = json.loads((trial / "checkpoints" / "manifest.json").read_text())
        assert manifest["finished"], trial
        kept = manifest["checkpoints"]
        best = max(entry["metrics"][metric] for entry in manifest["history"])
        assert kept and all(c["metrics"][metric] == best for c in kept), (trial, kept)
        assert not list(trial.rglob("training_state.pt")), "finished trials keep no resume state"
        on_disk = sorted(p.name for p in (trial / "checkpoints").iterdir() if p.is_dir())
        assert on_disk == sorted(c["id"] for c in kept)
        assert not [p for p in trial.rglob("*") if ".tmp" in p.name]


def test_three_trial_study_with_a_failing_trial(kedro_project: Path, tiny_model_dir: Path) -> None:
    params = _params(tiny_model_dir, n_trials=3, epochs=2)
    params["hpo"]["study"].update(sampler="random", seed=1)
    # Added to the default space: batch_size 0 is rejected when the trainer config is built, so
    # that trial fails; with this seed the three trials sample both values.
    params["hpo"]["search_space"] = {
        "trainer": {"batch_size": {"type": "categorical", "choices": [8, 0]}},
    }
    run_pipeline(kedro_project, "hpo", params)

    study_dir = kedro_project / "experiments" / "study_e2e"
    states = {
        t.name: json.loads((t / "trial.json").read_text())["state"]
        for t in sorted(study_dir.glob("trial_*"))
    }
    assert len(states) == 3 and "failed" in states.values() and "completed" in states.values()
    failed = next(t for t, s in states.items() if s == "failed")
    assert "batch_size" in json.loads((study_dir / failed / "trial.json").read_text())["error"]

    best = json.loads((kedro_project / "data/07_model_output/hpo_best_trial.json").read_text())
    assert best["best"]["params"]["trainer.batch_size"] == 8
    assert best["best"]["checkpoint"]["checkpoint_ids"]
    for name in ("hpo_trials.csv", "hpo_optimization_history.html", "hpo_param_importances.html"):
        assert (kedro_project / "data/08_reporting" / name).exists(), name
    completed = [t for t, s in states.items() if s == "completed"]
    rows = _metric_rows(kedro_project / "mlflow.db")
    assert {name for name, *_ in rows} == {f"e2e.{t}" for t in completed}
    _assert_each_epoch_logged_once(kedro_project / "mlflow.db", len(completed), epochs=2)


def _kedro(
    spawn: Callable[..., Any], project: Path, params: dict, stdout: Path | None = None
) -> subprocess.Popen[bytes]:
    """``kedro run --pipeline hpo`` in its own process group, stopped by ``spawn``'s teardown;
    its stdout and stderr to ``stdout`` when given (a file: not a terminal, as in CI)."""
    flat = []

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        else:
            flat.append(f"{prefix}={value}")

    walk("", params)
    kedro = Path(sys.executable).parent / "kedro"
    output = stdout.open("wb") if stdout is not None else subprocess.DEVNULL
    try:
        return spawn(  # type: ignore[no-any-return]
            [str(kedro), "run", "--pipeline", "hpo", "--params", ",".join(flat)],
            cwd=project,
            stdout=output,
            stderr=subprocess.STDOUT if stdout is not None else subprocess.DEVNULL,
            env={**os.environ, "TQDM_DISABLE": "1", "COLUMNS": "80"},  # rich's width off a tty
        )
    finally:
        if stdout is not None:
            output.close()  # type: ignore[union-attr]


#: Where a record starts in Kedro's rich log off a terminal: a time column (blank when the same
#: second as the record before), then the level; continuation lines of a wrapped message have
#: no level.
_RECORD_START = re.compile(r"^(\[[^\]]*\]|\s+)\s*(DEBUG|INFO|WARNING|ERROR|CRITICAL)\s")


def _records(stdout: str) -> list[str]:
    records: list[str] = []
    for line in stdout.splitlines(keepends=True):
        if _RECORD_START.match(line) or not records:
            records.append(line)
        else:
            records[-1] += line
    return records


def _assert_short_epoch_lines(stdout: Path, study_dir: Path) -> None:
    """One short record per epoch on stdout, whatever the metrics; all of them in study.jsonl.

    Rich folds a record into its message column (about 36 characters at 80 columns), so the
    line takes a few physical lines; with every metric it took about 150."""
    records = [r for r in _records(stdout.read_text()) if re.search(r" epoch \d+/\d+ ", r)]
    assert records, stdout.read_text()[-3000:]
    for record in records:
        assert "val_f1_macro=" in record and "eta" in record, record
        assert len(record.encode()) <= 600 and record.count("\n") <= 6, record
    logged = [json.loads(line) for line in (study_dir / "logs" / "study.jsonl").open()]
    progress = [r["extra"].get("progress") or {} for r in logged]
    epochs_logged = [p for p in progress if p.get("kind") == "epoch"]
    assert len(epochs_logged) >= len(records)
    assert all(len(p["metrics"]) > 50 for p in epochs_logged)  # every metric, ~100 of them


def _committed_epochs(trial: Path) -> int:
    try:
        return len(json.loads((trial / "checkpoints" / "manifest.json").read_text())["history"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def test_killed_study_resumes_to_exactly_n_trials(
    kedro_project: Path, tiny_model_dir: Path, spawn: Callable[..., Any]
) -> None:
    params = _params(tiny_model_dir, n_trials=3, epochs=3)
    study_dir = kedro_project / "experiments" / "study_e2e"
    process = _kedro(spawn, kedro_project, params)
    deadline = time.monotonic() + 240
    while _committed_epochs(study_dir / "trial_0001") < 1:  # mid-trial: one epoch committed
        assert process.poll() is None, "kedro run ended before it could be killed"
        assert time.monotonic() < deadline, "trial 1 never committed an epoch"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert _committed_epochs(study_dir / "trial_0001") < 3

    stdout = kedro_project / "rerun.log"
    rerun = _kedro(spawn, kedro_project, params, stdout)
    assert rerun.wait(timeout=300) == 0, stdout.read_text()[-3000:]

    states = [
        json.loads((t / "trial.json").read_text())["state"]
        for t in sorted(study_dir.glob("trial_*"))
    ]
    assert states == ["completed", "completed", "completed"]
    resumed = json.loads((study_dir / "trial_0001" / "trial.json").read_text())
    assert resumed["resumed"] is True
    _assert_each_epoch_logged_once(kedro_project / "mlflow.db", trials=3, epochs=3)
    _assert_retention(study_dir)
    _assert_short_epoch_lines(stdout, study_dir)


def test_a_study_with_no_completed_trial_fails_and_keeps_the_previous_best(
    kedro_project: Path, tiny_model_dir: Path
) -> None:
    from mental_health_hpo.hpo.results import NoCompletedTrialError

    previous = kedro_project / "data/07_model_output/hpo_best_trial.json"
    previous.write_text('{"best": {"number": 7}}')
    published = kedro_project / "data/06_models/best_checkpoint"
    published.mkdir(parents=True, exist_ok=True)
    (published / "weights.safetensors").write_bytes(b"previous best")
    params = _params(tiny_model_dir, n_trials=2, epochs=1)
    params["hpo"]["study"]["sampler"] = "random"
    params["hpo"]["search_space"] = {
        "trainer": {"batch_size": {"type": "categorical", "choices": [0]}}
    }
    with pytest.raises(Exception) as raised:
        run_pipeline(kedro_project, "hpo", params)
    chain = [raised.value, raised.value.__cause__, raised.value.__context__]
    assert any(isinstance(e, NoCompletedTrialError) for e in chain), raised.value
    assert "no completed trial" in str(raised.value) or "no completed trial" in str(chain)
    assert previous.read_text() == '{"best": {"number": 7}}'
    assert (published / "weights.safetensors").read_bytes() == b"previous best"
