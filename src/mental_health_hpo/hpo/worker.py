"""One worker of a study, start to end: the single entry point the Kedro node calls.

Validate ``params:hpo``, open the study, claim and run trials until the study is complete, then
derive its result from storage. Tracking is passed in (``open_tracking``), so this module stays
free of mlflow; the node passes MLflow's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mental_health_hpo import code_version
from mental_health_hpo.hpo.coordination import Coordination
from mental_health_hpo.hpo.objective import TrainingObjective
from mental_health_hpo.hpo.results import check_complete, plots, study_result, trials_table
from mental_health_hpo.hpo.setup import StudySetup, StudyTracking

#: Opens the study's tracking for this worker: (study name, coordination, study folder).
OpenTracking = Callable[[str, Coordination, Path], StudyTracking]


@dataclass(frozen=True)
class StudyOutputs:
    """What a worker returns once the study is complete (the hpo node's outputs)."""

    result: dict[str, Any]
    trials: pd.DataFrame
    plots: tuple[Any, Any, Any]


def run_worker(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    dataset_fingerprint: Mapping[str, Any],
    params: Mapping[str, Any],
    project_root: Path,
    open_tracking: OpenTracking,
) -> StudyOutputs:
    """Work on the study until it is complete, then return its result derived from storage.

    Raises when this worker stops before the study is complete (it writes no final outputs),
    or when the study completed no trial (the previous best stays published).
    """
    setup = StudySetup.from_params(params, project_root)
    study = setup.open(dataset_fingerprint, project_root)
    gate = setup.hub_gate()
    tracking = open_tracking(setup.config.name, setup.coordination, setup.study_dir)
    objective = TrainingObjective(
        train_df=train,
        validation_df=validation,
        base=setup.base,
        checkpointing=setup.checkpointing,
        publisher=tracking.publisher,
        tags={
            "study_id": setup.config.study_id,
            "dataset_fingerprint": str(dataset_fingerprint.get("fingerprint")),
            "code_version": code_version(),
        },
    )
    runner = setup.runner(study, objective, tracking, gate)
    try:
        run = runner.run()
    finally:
        tracking.flush()
    assert run.tally is not None
    check_complete(run.tally)
    result = study_result(
        study, setup.config, setup.study_dir, setup.metric, setup.coordination, setup.retention
    )
    tracking.study_complete(setup.coordination, setup.study_dir, result["best"]["value"])
    return StudyOutputs(result, trials_table(study), plots(study))


__all__ = ["OpenTracking", "StudyOutputs", "run_worker"]
