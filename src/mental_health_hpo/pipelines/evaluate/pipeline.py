"""evaluate: reads what ``hpo`` published (``best_checkpoint``) and the test split.

It does not include ``hpo`` (unlike ``hpo``, which includes ``data_ingest``): ``kedro run
--pipelines evaluate`` runs in its own session after a study and never retrains. kedro-viz still
draws the edge from ``hpo`` through the persisted ``best_checkpoint`` entry.
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from mental_health_hpo.pipelines.evaluate.nodes import evaluate_study

EVALUATE_INPUTS = [
    "model_input_train",  # the TF-IDF baselines are fitted on train and chosen on validation
    "model_input_validation",
    "model_input_test",
    "best_checkpoint",
    "dataset_fingerprint",
    "params:evaluate",
]
EVALUATE_OUTPUTS = [
    "evaluation_report",
    "summary_report",
    "evaluation_confusion_matrices",
    "evaluation_pr_curves",
    "evaluation_span_examples",
]


def create_pipeline(**kwargs: object) -> Pipeline:
    """One node: select, evaluate, report, track."""
    return Pipeline(
        [
            Node(
                evaluate_study,
                inputs=EVALUATE_INPUTS,
                outputs=EVALUATE_OUTPUTS,
                name="evaluate_best_trial",
                tags=["evaluate"],
            )
        ]
    )
