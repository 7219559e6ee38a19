"""Six processes racing on one PostgreSQL study end it with exactly n_trials, none run twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from servers import stop_process_group

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


WORKERS = 6
N_TRIALS = 48


def test_six_racing_workers_run_exactly_n_trials(postgres_url: str, tmp_path: Path) -> None:
    url = postgres_url
    worker = Path(__file__).with_name("race_worker.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    outs = [tmp_path / f"worker{i}.jsonl" for i in range(WORKERS)]
    processes = [
        subprocess.Popen(
            [sys.executable, str(worker), url, str(tmp_path / "study_race"), str(N_TRIALS), str(o)],
            env=env,
            start_new_session=True,
            stderr=subprocess.PIPE,
            text=True,
        )
        for o in outs
    ]
    try:
        deadline = time.monotonic() + 120
        while not all(Path(f"{o}.ready").exists() for o in outs):
            dead = [p.stderr.read() for p in processes if p.poll() is not None and p.stderr]
            assert not dead, f"a worker died while starting: {dead[0][-3000:]}"
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.1)
        (tmp_path / "go").touch()
        codes = [p.wait(timeout=240) for p in processes]
        errors = [p.stderr.read() for p in processes if p.stderr is not None]
    finally:
        for process in processes:
            stop_process_group(process)
    assert codes == [0] * WORKERS, [e[-4000:] for e in errors]

    runs = [json.loads(line) for o in outs if o.exists() for line in o.read_text().splitlines()]
    numbers = [r["trial"] for r in runs]
    assert sorted(numbers) == list(range(N_TRIALS)), "a trial ran twice or not at all"
    assert len({r["pid"] for r in runs}) > 1, "only one worker ever claimed a trial"
    study = optuna.load_study(study_name="race", storage=url)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == N_TRIALS
    assert all(t.state is TrialState.COMPLETE for t in trials)
