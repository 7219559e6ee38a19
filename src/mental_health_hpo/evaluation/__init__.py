"""Evaluate: pick a study's best trial and checkpoint(s), score them, report and plot.

Framework-free (no kedro, no mlflow), except ``mlflow_model`` (the MLflow pyfunc wrapper) and its
``pyfunc_code`` (the file MLflow runs to build it), which are
not imported here. The Kedro shell is ``pipelines/evaluate``.
"""

from mental_health_hpo.evaluation.report import (
    REPORT_NAME,
    SUMMARY_NAME,
    ReportValidationError,
    build_report,
    build_summary,
    json_bytes,
    metrics_section,
    report_bytes,
    report_schema,
    validate_report,
    write_json,
    write_report,
)
from mental_health_hpo.evaluation.run import (
    CheckpointEvaluation,
    evaluate_checkpoint,
    evaluate_checkpoints,
    metrics_table,
    model_config_of,
)
from mental_health_hpo.evaluation.selection import (
    Selection,
    SelectionError,
    TrialSelection,
    best_checkpoints,
    find_study_dir,
    select,
    select_best_trial,
)

__all__ = [
    "REPORT_NAME",
    "SUMMARY_NAME",
    "CheckpointEvaluation",
    "ReportValidationError",
    "Selection",
    "SelectionError",
    "TrialSelection",
    "best_checkpoints",
    "build_report",
    "build_summary",
    "evaluate_checkpoint",
    "evaluate_checkpoints",
    "find_study_dir",
    "json_bytes",
    "metrics_section",
    "metrics_table",
    "model_config_of",
    "report_bytes",
    "report_schema",
    "select",
    "select_best_trial",
    "validate_report",
    "write_json",
    "write_report",
]
