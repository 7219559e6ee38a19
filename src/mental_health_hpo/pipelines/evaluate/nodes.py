"""The evaluate node: the Kedro/MLflow shell around :mod:`mental_health_hpo.evaluation`.

The only place the test split is read. It evaluates the best trial's best checkpoint (and every
co-best one), writes the validated report and the study summary into the study folder, returns
them (and the plots) to the catalog, and logs metrics, tags and the pyfunc model to the active
MLflow run (kedro-mlflow's run of the ``evaluate`` pipeline).
"""

from __future__ import annotations

import logging
from typing import Any

import mlflow
import pandas as pd
from matplotlib.figure import Figure

from mental_health_hpo.datasets import BestCheckpoint
from mental_health_hpo.evaluation import (
    REPORT_NAME,
    SUMMARY_NAME,
    build_report,
    build_summary,
    evaluate_checkpoints,
    model_config_of,
    select,
    write_json,
    write_report,
)
from mental_health_hpo.evaluation.baselines import fit_baselines
from mental_health_hpo.evaluation.paper import paper_table
from mental_health_hpo.evaluation.plots import (
    confusion_matrices_figure,
    pr_curves_figure,
    span_examples_html,
)
from mental_health_hpo.evaluation.run import CheckpointEvaluation

logger = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "study_name": None,
    "experiments_dir": "experiments",
    "threshold": 0.5,
    "batch_size": 32,
    "span_examples": 10,
    "device": None,
    "log_model": True,
}


def evaluate_study(
    model_input_train: pd.DataFrame,
    model_input_validation: pd.DataFrame,
    model_input_test: pd.DataFrame,
    hpo_best_trial: dict[str, Any],
    best_checkpoint: BestCheckpoint,
    dataset_fingerprint: dict[str, Any],
    evaluate: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], Figure, Figure, str]:
    """Evaluate the study's best checkpoint(s) on the test split; report, plot and track.

    ``best_checkpoint`` is what hpo published (verified on load); unless another study is named,
    the selection from the study folder must agree with it.
    """
    options = {**DEFAULTS, **(evaluate or {})}
    selection = select(options["experiments_dir"], options["study_name"], hpo_best_trial)
    trial = selection.trial
    published = {best_checkpoint.record.id, *best_checkpoint.co_best}
    if options["study_name"] is None and not published & {
        ref.record.id for ref in selection.checkpoints
    }:
        raise ValueError(
            f"best_checkpoint ({sorted(published)}) is not among the best checkpoints of "
            f"{trial.trial_dir}: rerun `kedro run --pipeline hpo` to publish it again"
        )
    logger.info(
        "Evaluating study %s, %s (%s=%.6f), checkpoint(s) %s on %d test pairs",
        trial.study_id,
        trial.trial_id,
        selection.metric_name,
        trial.best_value,
        [ref.record.id for ref in selection.checkpoints],
        len(model_input_test),
    )
    evaluations = evaluate_checkpoints(
        model_config_of(trial.record),
        selection.checkpoints,
        model_input_test,
        threshold=float(options["threshold"]),
        batch_size=int(options["batch_size"]),
        device=options["device"],
    )
    # The TF-IDF baselines: fitted on train, chosen on validation, scored on these test posts.
    baselines = fit_baselines(model_input_train, model_input_validation, model_input_test)
    report_path = trial.study_dir / REPORT_NAME
    report = build_report(
        selection, evaluations, dataset_fingerprint, baselines=baselines, report_path=report_path
    )
    write_report(report)
    logger.info("%s", paper_table(report["paper_reference"]))
    for warning in report["warnings"]:
        logger.warning("%s", warning)
    summary = build_summary(trial.study_dir, selection.metric_name, report_path, report=report)
    write_json(trial.study_dir / SUMMARY_NAME, summary)

    primary = evaluations[0]
    title = f"study {trial.study_id}, {trial.trial_id}, {primary.ref.record.id} (test)"
    figures = (
        confusion_matrices_figure(
            report["test_metrics"]["criteria_matching"]["per_criterion"], title
        ),
        pr_curves_figure(primary.merged, title),
        span_examples_html(primary.merged, int(options["span_examples"]), title),
    )
    _track(report, primary, dataset_fingerprint, options)
    return (report, summary, *figures)


def _track(
    report: dict[str, Any],
    primary: CheckpointEvaluation,
    dataset_fingerprint: dict[str, Any],
    options: dict[str, Any],
) -> None:
    """Metrics, tags and the model on kedro-mlflow's active run (skipped when tracking is off)."""
    if mlflow.active_run() is None:
        logger.warning("No active MLflow run: evaluation metrics and model are not tracked")
        return
    mlflow.set_tags(
        {
            "study_id": report["study_id"],
            "best_trial_id": report["best_trial_id"],
            "dataset_fingerprint": str(dataset_fingerprint.get("fingerprint")),
            "evaluation_report_id": report["report_id"],
            "evaluated_checkpoints": ",".join(
                c["checkpoint_id"] for c in report["evaluated_checkpoints"]
            ),
        }
    )
    mlflow.log_metrics(primary.flat("test_"))
    mlflow.log_metric("best_validation_score", float(report["best_validation_score"]))
    if options["log_model"] and primary.model is not None:
        from mental_health_hpo.evaluation.mlflow_model import log_model

        info = log_model(
            primary.model,
            primary.weights_file,
            threshold=float(options["threshold"]),
            batch_size=int(options["batch_size"]),
        )
        mlflow.set_tag("model_uri", info.model_uri)
