"""Report figures and the study summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from mental_health_hpo.evaluation import build_summary, metrics_section
from mental_health_hpo.evaluation.plots import (
    confusion_matrices_figure,
    pr_curve,
    pr_curves_figure,
    span_examples_html,
)
from mental_health_hpo.metrics import average_precision, validation_metrics

from .support import hand_made_merged


def test_figures_are_built_and_saved(tmp_path: Path) -> None:
    merged = hand_made_merged()
    per_criterion = metrics_section(validation_metrics(merged))["criteria_matching"][
        "per_criterion"
    ]
    grid = confusion_matrices_figure(per_criterion * 5)  # 10 criteria: a 4x3 grid
    assert isinstance(grid, Figure) and len(grid.axes) == 12
    curves = pr_curves_figure(merged)
    for name, figure in (("grid.png", grid), ("pr.png", curves)):
        figure.savefig(tmp_path / name)
        assert (tmp_path / name).stat().st_size > 0


def test_pr_curve_area_is_average_precision() -> None:
    labels, scores = np.array([1, 0, 1, 0, 1]), np.array([0.9, 0.8, 0.7, 0.7, 0.1])
    recall, precision = pr_curve(labels, scores)
    area = float(np.sum(np.diff(recall) * precision[1:]))
    assert area == average_precision(labels, scores)


def test_span_examples_mark_gold_and_predicted_spans_and_escape_text() -> None:
    merged = hand_made_merged()
    merged.loc[0, "text"] = "<b>I can't sleep at all.</b>"
    merged.at[0, "gold_spans"] = [[3, 24]]
    html = span_examples_html(merged, n=2)
    assert html.count("<tr><td>") == 2 and "&lt;b&gt;" in html
    assert '<mark class="gold">I can&#x27;t sleep at all.</mark>' in html
    assert span_examples_html(merged, n=0).count("no pair") == 1


def test_summary_counts_trials_by_state_and_ranks_the_top(tmp_path: Path) -> None:
    study = tmp_path / "study_s"
    for number, state, value in ((0, "completed", 0.3), (1, "pruned", 0.2), (2, "completed", 0.7)):
        folder = study / f"trial_{number:04d}"
        folder.mkdir(parents=True)
        record = {"number": number, "state": state, "best_value": value, "params": {"a": number}}
        (folder / "trial.json").write_text(json.dumps(record))
    summary = build_summary(study, "val_f1_macro", study / "evaluation_report.json", top_k=5)
    assert summary["study_id"] == "s" and summary["n_trials"] == 3
    assert summary["trials_by_state"] == {"completed": 2, "pruned": 1}
    assert [t["trial_id"] for t in summary["top_trials"]] == ["trial_0002", "trial_0000"]
    assert summary["evaluation_report_path"].endswith("evaluation_report.json")
