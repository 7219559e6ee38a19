"""The evaluation report and the study summary: built, validated against a schema, then written.

The report is validated against ``report_schema.json`` (JSON Schema draft-07, shipped with the
package) before it touches disk, so a report on disk is always a valid one; a failure names the
JSON path of every bad field. Files are replaced atomically (temp file + rename).

Co-best checkpoints: every one is evaluated and carries its own ``test_metrics`` in
``evaluated_checkpoints``; the report's top-level ``test_metrics`` are those of the first co-best
checkpoint by epoch (the primary one).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker

from mental_health_hpo.checkpointing import atomic_write_bytes
from mental_health_hpo.evaluation.run import CheckpointEvaluation
from mental_health_hpo.evaluation.selection import Selection, trial_records

REPORT_NAME = "evaluation_report.json"
SUMMARY_NAME = "summary_report.json"
SCHEMA_NAME = "report_schema.json"
CRITERIA_KEYS = (
    "accuracy",
    "f1_macro",
    "f1_micro",
    "precision_macro",
    "recall_macro",
    "macro_pr_auc",
)
EVIDENCE_KEYS = ("exact_match", "f1", "char_f1", "null_span_accuracy")


class ReportValidationError(ValueError):
    """A report does not match the schema; ``errors`` lists ``(json_path, message)`` pairs."""

    def __init__(self, errors: Sequence[tuple[str, str]]) -> None:
        self.errors = list(errors)
        self.paths = [path for path, _ in self.errors]
        details = "; ".join(f"{path}: {message}" for path, message in self.errors)
        super().__init__(f"evaluation report is invalid: {details}")


@cache
def report_schema() -> dict[str, Any]:
    """The draft-07 schema of the evaluation report (package data)."""
    text = resources.files("mental_health_hpo.evaluation").joinpath(SCHEMA_NAME).read_text()
    schema: dict[str, Any] = json.loads(text)
    Draft7Validator.check_schema(schema)
    return schema


def _json_path(parts: Sequence[Any]) -> str:
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def validate_report(report: Mapping[str, Any], schema: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`ReportValidationError` naming each bad field (``$.test_metrics...``)."""
    validator = Draft7Validator(schema or report_schema(), format_checker=FormatChecker())
    errors = sorted(validator.iter_errors(report), key=lambda e: [str(p) for p in e.path])
    if errors:
        raise ReportValidationError([(_json_path(list(e.path)), e.message) for e in errors])


def write_json(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Atomically write ``payload`` as indented JSON."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(payload, indent=2, sort_keys=False, default=str).encode() + b"\n"
    atomic_write_bytes(target, data)
    return target


def write_report(report: Mapping[str, Any], path: str | Path | None = None) -> Path:
    """Validate, then atomically write the report (to ``report_file_path`` by default)."""
    validate_report(report)
    return write_json(path or report["report_file_path"], report)


# --------------------------------------------------------------------------- sections


def criteria_section(criteria: Mapping[str, Any]) -> dict[str, Any]:
    """``criteria_metrics`` output in the report's shape (per-criterion as a list)."""
    section: dict[str, Any] = {key: float(criteria[key]) for key in CRITERIA_KEYS}
    section["n_pairs"] = int(criteria.get("n_pairs", 0))
    section["per_criterion"] = [
        {
            "id": name,
            "f1": float(values["f1"]),
            "precision": float(values["precision"]),
            "recall": float(values["recall"]),
            "pr_auc": float(values["pr_auc"]),
            "confusion_matrix": [[int(v) for v in row] for row in values["confusion"]],
            "support": int(values["support"]),
        }
        for name, values in criteria.get("per_criterion", {}).items()
    ]
    return section


def evidence_section(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """``evidence_metrics`` output in the report's shape."""
    section: dict[str, Any] = {key: float(evidence[key]) for key in EVIDENCE_KEYS}
    section["n_with_evidence"] = int(evidence.get("n_with_evidence", 0))
    section["n_without_evidence"] = int(evidence.get("n_without_evidence", 0))
    return section


def metrics_section(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``{"criteria_matching": ..., "evidence_binding": ...}`` of ``validation_metrics``."""
    return {
        "criteria_matching": criteria_section(metrics["criteria"]),
        "evidence_binding": evidence_section(metrics["evidence"]),
    }


def checkpoint_entry(evaluation: CheckpointEvaluation, co_best: bool) -> dict[str, Any]:
    """One ``evaluated_checkpoints`` entry."""
    ref = evaluation.ref
    return {
        "checkpoint_id": ref.record.id,
        "path": str(ref.path),
        "epoch": int(ref.record.epoch),
        "step": int(ref.record.step),
        "val_metric": float(ref.value),
        "co_best": co_best,
        "sha256": evaluation.weights_sha256,
        "test_metrics": metrics_section(evaluation.metrics),
    }


def resolved_config(
    trial_record: Mapping[str, Any], dataset_fingerprint: Mapping[str, Any]
) -> dict[str, Any]:
    """The trial's full resolved config plus model id, data source, fingerprint and seeds."""
    config = dict(trial_record.get("config", {}) or {})
    model = dict(config.get("model", {}) or {})
    config["model"] = model
    config["model_id"] = str(model.get("encoder", ""))
    config["data_source"] = str(dataset_fingerprint.get("source", "unknown"))
    config["dataset_fingerprint"] = str(dataset_fingerprint.get("fingerprint", "unknown"))
    config["seeds"] = dict(trial_record.get("seeds", {}) or {})
    config["params"] = dict(trial_record.get("params", {}) or {})
    return config


def report_id_of(study_id: str, trial_id: str, digests: Sequence[str], fingerprint: str) -> str:
    """Deterministic id: the same study, trial, weights and data give the same id."""
    body = json.dumps([study_id, trial_id, list(digests), fingerprint]).encode()
    return hashlib.sha256(body).hexdigest()[:16]


def build_report(
    selection: Selection,
    evaluations: Sequence[CheckpointEvaluation],
    dataset_fingerprint: Mapping[str, Any],
    *,
    report_path: str | Path | None = None,
    split: str = "test",
    generated_at: str | None = None,
) -> dict[str, Any]:
    """The evaluation report (not yet validated; :func:`write_report` validates)."""
    if not evaluations:
        raise ValueError("no checkpoint was evaluated")
    trial = selection.trial
    co_best = len(evaluations) > 1
    config = resolved_config(trial.record, dataset_fingerprint)
    path = Path(report_path) if report_path else trial.study_dir / REPORT_NAME
    return {
        "report_id": report_id_of(
            trial.study_id,
            trial.trial_id,
            [e.weights_sha256 for e in evaluations],
            config["dataset_fingerprint"],
        ),
        "study_id": trial.study_id,
        "best_trial_id": trial.trial_id,
        "generated_at": generated_at or datetime.now(UTC).isoformat(),
        "report_file_path": str(path),
        "split": split,
        "config": config,
        "optimization_metric_name": selection.metric_name,
        "best_validation_score": float(trial.best_value),
        "evaluated_checkpoints": [checkpoint_entry(e, co_best) for e in evaluations],
        "test_metrics": metrics_section(evaluations[0].metrics),
    }


def build_summary(
    study_dir: str | Path,
    metric_name: str,
    report_path: str | Path,
    *,
    top_k: int = 5,
) -> dict[str, Any]:
    """Trial count by state, the top ``top_k`` completed trials and the report's path."""
    records = trial_records(Path(study_dir))
    states = Counter(str(record.get("state", "unknown")) for _, record in records)
    scored = [
        (folder, record)
        for folder, record in records
        if record.get("state") == "completed" and record.get("best_value") is not None
    ]
    scored.sort(key=lambda item: (-float(item[1]["best_value"]), item[0].name))
    return {
        "study_id": Path(study_dir).name.removeprefix("study_"),
        "study_dir": str(study_dir),
        "optimization_metric_name": metric_name,
        "n_trials": len(records),
        "trials_by_state": dict(sorted(states.items())),
        "top_trials": [
            {
                "trial_id": folder.name,
                "number": int(record.get("number", -1)),
                "state": record.get("state"),
                "best_value": float(record["best_value"]),
                "best_epoch": record.get("best_epoch"),
                "params": record.get("params", {}),
                "mlflow_run_id": record.get("mlflow_run_id"),
            }
            for folder, record in scored[:top_k]
        ],
        "evaluation_report_path": str(report_path),
        "generated_at": datetime.now(UTC).isoformat(),
    }
