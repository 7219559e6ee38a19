"""TF-IDF baselines: fitted on train, chosen on validation, scored on the model's test posts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mental_health_hpo.data.model_input import synthetic_model_input
from mental_health_hpo.data.splits import SplitConfig
from mental_health_hpo.data.synthetic import SyntheticConfig
from mental_health_hpo.evaluation import build_report, build_summary, validate_report
from mental_health_hpo.evaluation.baselines import BaselineConfig, fit_baselines, split_ids
from mental_health_hpo.evaluation.run import CheckpointEvaluation
from mental_health_hpo.metrics import validation_metrics

from .support import FINGERPRINT, fake_baselines, fake_selection


@pytest.fixture(scope="module")
def splits() -> dict[str, pd.DataFrame]:
    table = synthetic_model_input(SyntheticConfig(n_posts=60, seed=11), SplitConfig())
    return {
        name: table[table["split"] == name].reset_index(drop=True)
        for name in ("train", "validation", "test")
    }


def test_baselines_are_scored_on_the_given_split_ids(splits: dict[str, pd.DataFrame]) -> None:
    result = fit_baselines(splits["train"], splits["validation"], splits["test"])
    for name, frame in splits.items():
        assert result.splits[name] == split_ids(frame)
    criteria, evidence = result.metrics["criteria"], result.metrics["sentence_evidence"]
    assert criteria["n_pairs"] == len(splits["test"])
    assert evidence["n_pairs"] + evidence["n_unaligned_positive_pairs"] == len(splits["test"])
    assert evidence["f1_macro"] > 0.3  # a real classifier, not "always none"
    assert result.selected["evidence_threshold"] in BaselineConfig().evidence_thresholds


def test_report_refuses_a_baseline_scored_on_other_test_posts(tmp_path: Path) -> None:
    selection, evaluations = fake_selection(tmp_path)
    other = evaluations[0].merged.assign(post_id=lambda f: f["post_id"] + "_other")
    with pytest.raises(ValueError, match="other test posts"):
        build_report(selection, evaluations, FINGERPRINT, baselines=fake_baselines(other))


def test_summary_warns_when_the_model_does_not_beat_the_baseline(tmp_path: Path) -> None:
    selection, evaluations = fake_selection(tmp_path)
    weak = evaluations[0].merged.assign(prob=0.0, pred_start=-1, pred_end=-1)
    losing = [CheckpointEvaluation(evaluations[0].ref, validation_metrics(weak), weak)]
    strong = fake_baselines()
    strong.metrics = validation_metrics(evaluations[0].merged)
    report = json.loads(json.dumps(build_report(selection, losing, FINGERPRINT, baselines=strong)))
    validate_report(report)
    first = report["comparison"][0]
    assert first["metric"] == "val_f1_macro" and first["is_optimization_metric"]
    assert not first["model_beats_baseline"]
    summary = build_summary(selection.trial.study_dir, "val_f1_macro", "r.json", report=report)
    assert any("val_f1_macro (the optimization metric)" in w for w in summary["warnings"])

    winning = build_report(selection, evaluations, FINGERPRINT, baselines=fake_baselines())
    assert winning["comparison"][0]["model_beats_baseline"]
    assert not any("optimization metric" in w for w in winning["warnings"])
