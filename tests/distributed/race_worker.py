"""One racing worker: a trivial Optuna-only objective, every trial it runs written to a file.

python race_worker.py STORAGE_URL STUDY_DIR N_TRIALS OUT_JSONL
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from mental_health_hpo.hpo.runner import TrialContext, run_study
from mental_health_hpo.hpo.search_space import SearchSpace
from mental_health_hpo.hpo.study import StudyConfig, open_study

SPACE = SearchSpace.from_params({"x": {"type": "float", "low": 0.0, "high": 1.0}})


def main() -> None:
    url, study_dir, n_trials, out = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    config = StudyConfig(name="race", storage=url, n_trials=n_trials, pruner="none", lease_s=5)
    study = open_study(config, SPACE, study_dir.parent)
    Path(out + ".ready").touch()
    while not Path(out).parent.joinpath("go").exists():  # every worker starts together
        time.sleep(0.01)

    def objective(context: TrialContext) -> float:
        started = time.time()
        time.sleep(0.02)
        with Path(out).open("a", encoding="utf-8") as handle:
            line = {"trial": context.trial.number, "pid": os.getpid(), "start": started}
            handle.write(json.dumps({**line, "end": time.time()}) + "\n")
        return float(context.sampled["x"])

    run_study(study, config, SPACE, {}, objective, study_dir)


if __name__ == "__main__":
    main()
