"""The hpo node: one worker of an Optuna study, tracked in MLflow, run inside one Kedro node.

Start it on as many hosts as wanted against one database and one shared experiments folder:
each run claims trials until the study is complete. See docs/distributed.md. What it does lives
in :func:`mental_health_hpo.hpo.worker.run_worker`; this node adds MLflow and the catalog types.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mental_health_hpo.datasets import CheckpointReference
from mental_health_hpo.hpo.worker import run_worker
from mental_health_hpo.interrupt import remember_experiments_dir
from mental_health_hpo.tracking.masking import install_mlflow_masking
from mental_health_hpo.tracking.study_tracking import open_study_tracking


def run_hpo(
    model_input_train: pd.DataFrame,
    model_input_validation: pd.DataFrame,
    dataset_fingerprint: dict[str, Any],
    hpo: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame, Any, Any, Any, CheckpointReference]:
    """Work on the study until it is complete; its result, trials, plots and best checkpoint."""
    install_mlflow_masking()
    remember_experiments_dir(hpo.get("study", {}).get("experiments_dir"))  # for a Ctrl-C
    outputs = run_worker(
        model_input_train,
        model_input_validation,
        dataset_fingerprint,
        hpo,
        Path.cwd(),
        open_study_tracking,
    )
    reference = CheckpointReference.of_study_result(outputs.result)
    return (outputs.result, outputs.trials, *outputs.plots, reference)
