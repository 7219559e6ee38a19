"""One racing worker: a trivial Optuna-only objective, every trial it runs written to a file.

python race_worker.py STORAGE_URL STUDY_DIR N_TRIALS OUT_JSONL
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from mental_health_hpo.hpo.runner import TrialContext
from mental_health_hpo.hpo.setup import StudySetup


def main() -> None:
    url, study_dir, n_trials, out = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    # As a worker builds it from params:hpo; the study folder is <root>/experiments/study_race.
    root = study_dir.parent
    study_params = {"name": "race", "storage": url, "n_trials": n_trials, "pruner": "none",
                    "lease_s": 5, "experiments_dir": str(study_dir.parent)}  # fmt: skip
    space = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
    params = {"study": study_params, "search_space": space}
    setup = StudySetup.from_params(params, root)
    study = setup.open({}, root)
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

    setup.runner(study, objective).run()


if __name__ == "__main__":
    main()
