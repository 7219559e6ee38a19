"""The hpo node: one worker of an Optuna study, tracked in MLflow, run inside one Kedro node.

Start it on as many hosts as wanted against one database and one shared experiments folder:
each run claims trials until the study is complete. See docs/distributed.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mental_health_hpo.datasets import CheckpointReference
from mental_health_hpo.pipelines.hpo.results import (
    check_complete,
    checkpoint_reference,
    plots,
    study_result,
    trials_table,
)
from mental_health_hpo.pipelines.hpo.study_tracking import open_study_tracking
from mental_health_hpo.pipelines.hpo.wiring import StudySetup
from mental_health_hpo.tracking.masking import install_mlflow_masking


def run_hpo(
    model_input_train: pd.DataFrame,
    model_input_validation: pd.DataFrame,
    dataset_fingerprint: dict[str, Any],
    hpo: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame, Any, Any, Any, CheckpointReference]:
    """Work on the study until it is complete, then return its result derived from storage.

    Raises when this worker stops before the study is complete (it writes no final outputs),
    or when the study completed no trial (the previous best stays published).
    """
    install_mlflow_masking()
    root = Path.cwd()
    setup = StudySetup.from_params(hpo, root)
    study = setup.open(dataset_fingerprint, root)
    gate = setup.hub_gate(hpo)
    tracking = open_study_tracking(setup.config.name, setup.coordination, setup.study_dir)
    runner = setup.runner(
        study, model_input_train, model_input_validation, dataset_fingerprint, tracking, gate
    )
    try:
        run = runner.run()
    finally:
        tracking.tracker.flush_buffer(attempts=5)
    assert run.tally is not None
    check_complete(run.tally)
    result = study_result(
        study, setup.config, setup.study_dir, setup.metric, setup.coordination, setup.retention
    )
    tracking.end_abandoned(setup.coordination, setup.study_dir)
    tracking.finish_study(result["best"]["value"])
    return (result, trials_table(study), *plots(study), checkpoint_reference(result))
