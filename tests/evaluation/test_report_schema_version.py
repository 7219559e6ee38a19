"""Report schema version 2: new sections required, version-1 reports still valid."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from mental_health_hpo.evaluation import ReportValidationError, validate_report
from mental_health_hpo.evaluation.report import REPORT_SCHEMA_VERSION

MakeReport = Callable[..., dict[str, Any]]

V2_ONLY = ("schema_version", "baselines", "comparison", "warnings", "paper_reference")


def as_version_1(report: dict[str, Any]) -> dict[str, Any]:
    """What the previous code wrote: no version, no v2 sections, no v2 metric keys."""
    old = copy.deepcopy(report)
    for key in V2_ONLY:
        old.pop(key)
    for metrics in [
        old["test_metrics"],
        *(c["test_metrics"] for c in old["evaluated_checkpoints"]),
    ]:
        metrics.pop("sentence_evidence")
        for key in ("all_negative_accuracy", "prevalence"):
            metrics["criteria_matching"].pop(key)
        metrics["evidence_binding"].pop("share_without_evidence")
    return old


def test_version_2_report_keeps_every_version_1_field(make_report: MakeReport) -> None:
    report = make_report()
    assert report["schema_version"] == REPORT_SCHEMA_VERSION == "2"
    old = as_version_1(report)
    validate_report(old)  # a report written before version 2 still validates

    def keys(node: Any, path: str = "") -> set[str]:
        if isinstance(node, dict):
            return {f"{path}.{k}" for k in node} | {
                p for k, v in node.items() for p in keys(v, f"{path}.{k}")
            }
        return set()

    assert keys(old) <= keys(report)


@pytest.mark.parametrize("section", ["baselines", "comparison", "paper_reference"])
def test_version_2_report_requires_its_sections(make_report: MakeReport, section: str) -> None:
    report = make_report()
    report.pop(section)
    with pytest.raises(ReportValidationError, match=section):
        validate_report(report)


def test_version_2_report_requires_sentence_evidence(make_report: MakeReport) -> None:
    report = make_report()
    report["test_metrics"].pop("sentence_evidence")
    with pytest.raises(ReportValidationError, match="sentence_evidence"):
        validate_report(report)


def test_paper_reference_sits_next_to_the_anchor_figures(make_report: MakeReport) -> None:
    reference = make_report()["paper_reference"]
    assert [a["f1_macro"] for a in reference["anchors"]] == [0.28, 0.36, 0.489]
    assert [a["f1_micro"] for a in reference["anchors"]] == [0.39, 0.51, None]
    assert set(reference["project"]["per_label_f1"]) >= {"NO_SYMPTOMS", "FATIGUE"}
