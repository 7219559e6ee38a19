"""The report's JSON Schema: a built report validates, each corruption is rejected by name."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mental_health_hpo.evaluation import (
    ReportValidationError,
    report_schema,
    validate_report,
    write_report,
)

MakeReport = Callable[..., dict[str, Any]]


def test_schema_is_draft_07_and_shipped_with_the_package() -> None:
    schema = report_schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    for field in (
        "report_id",
        "study_id",
        "best_trial_id",
        "generated_at",
        "report_file_path",
        "config",
        "optimization_metric_name",
        "best_validation_score",
        "evaluated_checkpoints",
        "test_metrics",
    ):
        assert field in schema["required"]


def test_built_report_validates_and_is_written_atomically(
    make_report: MakeReport, tmp_path: Path
) -> None:
    report = make_report()
    validate_report(report)
    target = tmp_path / "out" / "evaluation_report.json"
    write_report(report, target)
    assert json.loads(target.read_text()) == report
    assert [p.name for p in target.parent.iterdir()] == ["evaluation_report.json"]


def test_report_content(make_report: MakeReport) -> None:
    report = make_report()
    assert report["study_id"] == "s1" and report["best_trial_id"] == "trial_0001"
    assert report["config"]["model_id"] == "packaged:all-minilm-l6-v2"
    assert report["config"]["data_source"] == "synthetic"
    assert report["config"]["dataset_fingerprint"] == "f" * 16
    assert report["config"]["seeds"] == {"seed.seed": 42}
    criteria = report["test_metrics"]["criteria_matching"]
    assert [c["id"] for c in criteria["per_criterion"]] == ["SLEEP_ISSUES", "FATIGUE"]
    sleep = criteria["per_criterion"][0]
    assert sleep["confusion_matrix"] == [[0, 1], [0, 2]] and sleep["support"] == 2
    (entry,) = report["evaluated_checkpoints"]
    assert entry["co_best"] is False and entry["test_metrics"] == report["test_metrics"]


def test_report_id_is_deterministic(make_report: MakeReport) -> None:
    assert make_report()["report_id"] == make_report()["report_id"]


def _drop(report: dict[str, Any]) -> None:
    del report["test_metrics"]["criteria_matching"]["f1_macro"]


def _wrong_type(report: dict[str, Any]) -> None:
    report["best_validation_score"] = "high"


def _bad_matrix(report: dict[str, Any]) -> None:
    report["test_metrics"]["criteria_matching"]["per_criterion"][1]["confusion_matrix"] = [
        [1, 2, 3],
        [4, 5, 6],
    ]


def _flat_matrix(report: dict[str, Any]) -> None:
    report["evaluated_checkpoints"][0]["test_metrics"]["criteria_matching"]["per_criterion"][0][
        "confusion_matrix"
    ] = [1, 2, 3, 4]


def _bad_sha(report: dict[str, Any]) -> None:
    report["evaluated_checkpoints"][0]["sha256"] = "not-a-digest"


def _no_checkpoints(report: dict[str, Any]) -> None:
    report["evaluated_checkpoints"] = []


def _score_out_of_range(report: dict[str, Any]) -> None:
    report["test_metrics"]["evidence_binding"]["char_f1"] = 1.5


def _missing_seeds(report: dict[str, Any]) -> None:
    del report["config"]["seeds"]


@pytest.mark.parametrize(
    ("corrupt", "path", "words"),
    [
        (_drop, "$.test_metrics.criteria_matching", "f1_macro"),
        (_wrong_type, "$.best_validation_score", "number"),
        (_bad_matrix, "$.test_metrics.criteria_matching.per_criterion[1].confusion_matrix", ""),
        (
            _flat_matrix,
            "$.evaluated_checkpoints[0].test_metrics.criteria_matching.per_criterion[0]"
            ".confusion_matrix[0]",
            "array",
        ),
        (_bad_sha, "$.evaluated_checkpoints[0].sha256", "does not match"),
        (_no_checkpoints, "$.evaluated_checkpoints", ""),
        (_score_out_of_range, "$.test_metrics.evidence_binding.char_f1", "maximum"),
        (_missing_seeds, "$.config", "seeds"),
    ],
)
def test_corrupted_report_is_rejected_naming_the_field(
    make_report: MakeReport,
    tmp_path: Path,
    corrupt: Callable[[dict[str, Any]], None],
    path: str,
    words: str,
) -> None:
    report = copy.deepcopy(make_report())
    corrupt(report)
    with pytest.raises(ReportValidationError) as caught:
        validate_report(report)
    assert any(p.startswith(path) for p in caught.value.paths), caught.value.paths
    assert path in str(caught.value) and words in str(caught.value)
    target = tmp_path / "rejected.json"
    with pytest.raises(ReportValidationError):
        write_report(report, target)
    assert not target.exists(), "an invalid report must never reach disk"


def test_report_with_co_best_checkpoints_validates(make_report: MakeReport) -> None:
    report = make_report(n_checkpoints=2)
    validate_report(report)
    assert [c["co_best"] for c in report["evaluated_checkpoints"]] == [True, True]
