"""The evaluate node: the Kedro/MLflow shell around :mod:`mental_health_hpo.evaluation`.

The only place the test split is read. Everything comes through the catalog: ``best_checkpoint``
is the published best trial (its record and checkpoint refs, loaded lazily; another study with
``--params evaluate.study_name=NAME``, which the catalog entry passes to the dataset). The node
verifies and loads each checkpoint once while it evaluates it, falls back past a corrupt one,
writes the validated report and the study summary into the study folder, returns them (and the
plots) to the catalog, and logs metrics, tags and the pyfunc model to kedro-mlflow's run.
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
    Selection,
    TrialSelection,
    build_report,
    build_summary,
    json_bytes,
    model_config_of,
    report_bytes,
)
from mental_health_hpo.evaluation.baselines import BaselineConfig, BaselineResult, fit_baselines
from mental_health_hpo.evaluation.paper import paper_table
from mental_health_hpo.evaluation.plots import (
    confusion_matrices_figure,
    pr_curves_figure,
    span_examples_html,
)
from mental_health_hpo.evaluation.run import (
    CheckpointEvaluation,
    SkippedCheckpoint,
    evaluate_with_fallback,
)
from mental_health_hpo.metrics.thresholds import EVIDENCE_THRESHOLDS, validate_grid
from mental_health_hpo.workspace import storage_at

logger = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "threshold": 0.5,
    "evidence_thresholds": list(EVIDENCE_THRESHOLDS),
    "batch_size": 32,
    "span_examples": 10,
    "device": None,
    "log_model": True,
}


def evaluate_study(
    model_input_train: pd.DataFrame,
    model_input_validation: pd.DataFrame,
    model_input_test: pd.DataFrame,
    best_checkpoint: BestCheckpoint,
    dataset_fingerprint: dict[str, Any],
    evaluate: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], Figure, Figure, str]:
    """Evaluate the published best checkpoint(s) on the test split; report, plot and track."""
    options = {**DEFAULTS, **(evaluate or {})}
    grid = validate_grid(options["evidence_thresholds"], "evaluate.evidence_thresholds")
    record = best_checkpoint.record
    logger.info(
        "Evaluating study %s, %s (%s=%.6f), checkpoint(s) %s on %d test pairs",
        record.study_id,
        record.trial_id,
        record.metric_name,
        record.value,
        record.checkpoint_ids,
        len(model_input_test),
    )
    evaluations, skipped = _evaluate(
        best_checkpoint, model_input_validation, model_input_test, grid, options
    )
    # The TF-IDF baselines: fitted on train, chosen on validation (from the model's evidence
    # threshold grid), scored on these test posts.
    baselines = fit_baselines(
        model_input_train,
        model_input_validation,
        model_input_test,
        BaselineConfig(evidence_thresholds=grid),
    )
    report, summary = _write_reports(
        best_checkpoint, evaluations, skipped, baselines, dataset_fingerprint
    )
    _track(report, evaluations[0], dataset_fingerprint, options)
    return (report, summary, *_figures(report, evaluations[0], options))


def _evaluate(
    best_checkpoint: BestCheckpoint,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    grid: tuple[float, ...],
    options: dict[str, Any],
) -> tuple[list[CheckpointEvaluation], list[SkippedCheckpoint]]:
    """Every valid best checkpoint (or the first valid fallback), evidence threshold chosen on
    validation, test scored once."""
    evaluations, skipped = evaluate_with_fallback(
        model_config_of(best_checkpoint.record.trial_record),
        best_checkpoint.checkpoints,
        best_checkpoint.fallbacks,
        test,
        validation=validation,
        evidence_thresholds=grid,
        threshold=float(options["threshold"]),
        batch_size=int(options["batch_size"]),
        device=options["device"],
    )
    for entry in skipped:
        logger.warning("checkpoint %s not evaluated: %s", entry.path, entry.reason)
    chosen = evaluations[0].evidence_threshold
    if chosen is not None:
        logger.info(
            "Evidence threshold %.2f, chosen on validation (sentence-evidence macro-F1 %.4f)",
            chosen.value,
            chosen.validation_f1_macro,
        )
    return evaluations, skipped


def _write_reports(
    best_checkpoint: BestCheckpoint,
    evaluations: list[CheckpointEvaluation],
    skipped: list[SkippedCheckpoint],
    baselines: BaselineResult,
    dataset_fingerprint: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The validated report and the study summary, written into the study folder."""
    selection = _selection(best_checkpoint, evaluations)
    report_path = best_checkpoint.study_dir / REPORT_NAME
    report = build_report(
        selection, evaluations, dataset_fingerprint, baselines=baselines, report_path=report_path
    )
    report["skipped_checkpoints"] = [entry.to_json() for entry in skipped]
    study = storage_at(best_checkpoint.study_dir)  # a folder, or the study's bucket prefix
    study.put(REPORT_NAME, report_bytes(report))
    logger.info("%s", paper_table(report["paper_reference"]))
    for warning in report["warnings"]:
        logger.warning("%s", warning)
    metric = best_checkpoint.record.metric_name
    summary = build_summary(best_checkpoint.study_dir, metric, report_path, report=report)
    study.put(SUMMARY_NAME, json_bytes(summary))
    return report, summary


def _selection(best: BestCheckpoint, evaluations: list[CheckpointEvaluation]) -> Selection:
    """The report's view of what was evaluated: the published trial and the checkpoints used."""
    record = best.record
    trial = TrialSelection(
        study_dir=best.study_dir,
        trial_dir=best.trial_dir,
        trial_id=record.trial_id,
        number=record.trial_number,
        best_value=record.value,
        record=record.trial_record,
    )
    return Selection(trial, record.metric_name, [e.ref for e in evaluations])


def _figures(
    report: dict[str, Any], primary: CheckpointEvaluation, options: dict[str, Any]
) -> tuple[Figure, Figure, str]:
    title = f"study {report['study_id']}, {report['best_trial_id']}, {primary.ref.record.id} (test)"
    per_criterion = report["test_metrics"]["criteria_matching"]["per_criterion"]
    return (
        confusion_matrices_figure(per_criterion, title),
        pr_curves_figure(primary.merged, title),
        span_examples_html(primary.merged, int(options["span_examples"]), title),
    )


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
    if primary.evidence_threshold is not None:
        mlflow.log_metric("evidence_threshold", primary.evidence_threshold.value)
    if options["log_model"] and primary.model is not None:
        from mental_health_hpo.evaluation.mlflow_model import log_model

        with primary.weights_on_disk() as weights:
            info = log_model(
                primary.model,
                weights,
                threshold=float(options["threshold"]),
                batch_size=int(options["batch_size"]),
            )
        mlflow.set_tag("model_uri", info.model_uri)
