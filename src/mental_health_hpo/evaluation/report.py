"""The evaluation report and the study summary: built, validated against a schema, then written.

The report is validated against ``report_schema.json`` (JSON Schema draft-07, shipped with the
package) before it touches disk, so a report on disk is always a valid one; a failure names the
JSON path of every bad field. Files are replaced atomically (temp file + rename).

Co-best checkpoints: every one is evaluated and carries its own ``test_metrics`` in
``evaluated_checkpoints``; the report's top-level ``test_metrics`` are those of the first co-best
checkpoint by epoch (the primary one).

Schema version 2 (``schema_version``; a report without one is version 1, and still valid: every
version-1 field is kept) adds the sentence-level evidence metrics, the rates to read accuracy
and ``null_span_accuracy`` against, the TF-IDF ``baselines`` scored on the same test posts,
the model-versus-baseline ``comparison`` and the ReDSM5 paper's reference figures
(``paper_reference``) next to the project's post-level figures in the paper's label space.
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

from mental_health_hpo.evaluation.baselines import BaselineResult, split_ids
from mental_health_hpo.evaluation.paper import paper_reference
from mental_health_hpo.evaluation.run import CheckpointEvaluation
from mental_health_hpo.evaluation.selection import Selection, study_id_of, trial_records
from mental_health_hpo.metrics import flatten_metrics
from mental_health_hpo.workspace.atomic import atomic_write_bytes
from mental_health_hpo.workspace.layout import TrialLayout

REPORT_NAME = "evaluation_report.json"
SUMMARY_NAME = "summary_report.json"
SCHEMA_NAME = "report_schema.json"
#: Version of the report layout written by this module; see the module docstring.
REPORT_SCHEMA_VERSION = "2"
CRITERIA_KEYS = (
    "accuracy",
    "f1_macro",
    "f1_micro",
    "precision_macro",
    "recall_macro",
    "macro_pr_auc",
)
CRITERIA_RATE_KEYS = ("all_negative_accuracy", "prevalence")
EVIDENCE_KEYS = ("exact_match", "f1", "char_f1", "null_span_accuracy")
SENTENCE_EVIDENCE_KEYS = ("f1_macro", "precision_macro", "recall_macro", "f1_micro")
SENTENCE_EVIDENCE_COUNTS = (
    "n_evidence_sentences",
    "n_predicted_sentences",
    "n_pairs",
    "n_unaligned_positive_pairs",
)
#: Flat metric names (``metrics.flatten_metrics``) compared between model and baseline.
COMPARED_METRICS = ("val_f1_macro", "val_f1_micro", "val_sentence_evidence_f1_macro")


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
    for key in CRITERIA_RATE_KEYS:
        if key in criteria:
            section[key] = float(criteria[key])
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
    if "share_without_evidence" in evidence:
        section["share_without_evidence"] = float(evidence["share_without_evidence"])
    return section


def sentence_evidence_section(sentences: Mapping[str, Any]) -> dict[str, Any]:
    """``sentence_evidence_metrics`` output in the report's shape (per-criterion as a list)."""
    section: dict[str, Any] = {key: float(sentences[key]) for key in SENTENCE_EVIDENCE_KEYS}
    for key in SENTENCE_EVIDENCE_COUNTS:
        section[key] = int(sentences.get(key, 0))
    section["share_pairs_without_evidence"] = float(
        sentences.get("share_pairs_without_evidence", 0.0)
    )
    section["per_criterion"] = [
        {
            "id": name,
            **{key: float(values[key]) for key in ("f1", "precision", "recall")},
            **{key: int(values[key]) for key in ("tp", "fp", "fn", "support")},
        }
        for name, values in sentences.get("per_criterion", {}).items()
    ]
    return section


def metrics_section(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``criteria_matching``, ``evidence_binding`` (spans) and, when scored,
    ``sentence_evidence`` of ``validation_metrics``."""
    section = {
        "criteria_matching": criteria_section(metrics["criteria"]),
        "evidence_binding": evidence_section(metrics["evidence"]),
    }
    if "sentence_evidence" in metrics:
        section["sentence_evidence"] = sentence_evidence_section(metrics["sentence_evidence"])
    return section


def baselines_section(result: BaselineResult) -> dict[str, Any]:
    """The TF-IDF baselines: test metrics, methods, what validation chose, the split ids."""
    return {
        "criteria_matching": criteria_section(result.metrics["criteria"]),
        "sentence_evidence": sentence_evidence_section(result.metrics["sentence_evidence"]),
        "methods": dict(result.methods),
        "selected_on_validation": {k: float(v) for k, v in result.selected.items()},
        "splits": {name: dict(ids) for name, ids in result.splits.items()},
    }


def comparison(
    model_metrics: Mapping[str, Any], baseline: BaselineResult, optimization_metric: str
) -> list[dict[str, Any]]:
    """Model against baseline on the test split, for each compared metric (``val_`` names).

    The optimization metric comes first when the baseline has it (it always has the criteria
    and sentence-evidence ones).
    """
    model_flat = flatten_metrics(dict(model_metrics), prefix="val_")
    baseline_flat = flatten_metrics(dict(baseline.metrics), prefix="val_")
    names = [optimization_metric, *(m for m in COMPARED_METRICS if m != optimization_metric)]
    return [
        {
            "metric": name,
            "model": float(model_flat[name]),
            "baseline": float(baseline_flat[name]),
            "model_beats_baseline": bool(model_flat[name] > baseline_flat[name]),
            "is_optimization_metric": name == optimization_metric,
        }
        for name in names
        if name in model_flat and name in baseline_flat
    ]


def comparison_warnings(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """A sentence for each compared metric where the model does not beat its baseline."""
    warnings = []
    for entry in entries:
        if entry["model_beats_baseline"]:
            continue
        role = " (the optimization metric)" if entry["is_optimization_metric"] else ""
        warnings.append(
            f"the model does not beat the TF-IDF baseline on {entry['metric']}{role}: "
            f"test {entry['model']:.4f} vs baseline {entry['baseline']:.4f}"
        )
    return warnings


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
        "evidence_threshold": (
            evaluation.evidence_threshold.to_json()
            if evaluation.evidence_threshold is not None
            else {"value": 0.5, "chosen_on": "fixed"}
        ),
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
    baselines: BaselineResult,
    report_path: str | Path | None = None,
    split: str = "test",
    generated_at: str | None = None,
) -> dict[str, Any]:
    """The evaluation report (not yet validated; :func:`write_report` validates).

    ``baselines`` must have been scored on the posts the model was evaluated on: a mismatch
    raises (a baseline on other posts is no baseline).
    """
    if not evaluations:
        raise ValueError("no checkpoint was evaluated")
    evaluated = split_ids(evaluations[0].merged)
    if baselines.splits.get(split, {}).get("post_ids_sha256") != evaluated["post_ids_sha256"]:
        raise ValueError(
            f"baselines were scored on other {split} posts than the model "
            f"({baselines.splits.get(split, {}).get('n_posts')} vs {evaluated['n_posts']}); "
            f"fit them on the same model_input_{split} table"
        )
    trial = selection.trial
    co_best = len(evaluations) > 1
    config = resolved_config(trial.record, dataset_fingerprint)
    path = Path(report_path) if report_path else trial.study_dir / REPORT_NAME
    entries = comparison(evaluations[0].metrics, baselines, selection.metric_name)
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
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
        "baselines": baselines_section(baselines),
        "comparison": entries,
        "warnings": comparison_warnings(entries),
        "paper_reference": paper_reference(evaluations[0].merged),
    }


def build_summary(
    study_dir: str | Path,
    metric_name: str,
    report_path: str | Path,
    *,
    top_k: int = 5,
    report: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Trial count by state, the top ``top_k`` completed trials and the report's path.

    With the ``report``: its model-versus-baseline comparison and a warning for each metric,
    the optimization metric first, where the model does not beat the baseline.
    """
    records = trial_records(Path(study_dir))
    states = Counter(str(record.get("state", "unknown")) for _, record in records)
    scored = [
        (folder, record)
        for folder, record in records
        if record.get("state") == "completed" and record.get("best_value") is not None
    ]
    scored.sort(key=lambda item: (-float(item[1]["best_value"]), item[0].name))
    return {
        "study_id": study_id_of(Path(study_dir)),
        "study_dir": str(study_dir),
        "optimization_metric_name": metric_name,
        "n_trials": len(records),
        "trials_by_state": dict(sorted(states.items())),
        "top_trials": [
            {
                "trial_id": TrialLayout(folder).trial_id,
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
        **_baseline_view(report),
    }


def _baseline_view(report: Mapping[str, Any] | None) -> dict[str, Any]:
    if report is None or "comparison" not in report:
        return {}
    entries = list(report["comparison"])
    return {"baseline_comparison": entries, "warnings": comparison_warnings(entries)}
