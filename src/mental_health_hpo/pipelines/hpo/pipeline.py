"""hpo: the study node, fed by data_ingest's model inputs (never the test split)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from mental_health_hpo.pipelines.data_ingest import create_pipeline as data_ingest_pipeline
from mental_health_hpo.pipelines.hpo.nodes import run_hpo

HPO_OUTPUTS = [
    "hpo_best_trial",
    "hpo_trials",
    "hpo_optimization_history",
    "hpo_param_importances",
    "hpo_parallel_coordinates",
    "best_checkpoint",
]


def create_pipeline(**kwargs: object) -> Pipeline:
    """``kedro run --pipelines hpo``: data_ingest, then this worker's share of the study."""
    study = Pipeline(
        [
            Node(
                run_hpo,
                inputs=[
                    "model_input_train",
                    "model_input_validation",
                    "dataset_fingerprint",
                    "params:hpo",
                ],
                outputs=HPO_OUTPUTS,
                name="run_hpo_study",
                tags=["hpo"],
            )
        ]
    )
    return data_ingest_pipeline() + study
