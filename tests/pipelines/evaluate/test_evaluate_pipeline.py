"""`kedro run --pipeline evaluate` after a tiny `hpo` study: the report, its numbers, MLflow.

Also the split wall: only evaluate consumes the test split; hpo and training cannot see it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import run_pipeline

from mental_health_hpo.evaluation import validate_report
from mental_health_hpo.model import ModelConfig
from mental_health_hpo.pipelines.data_ingest import create_pipeline as data_ingest_pipeline
from mental_health_hpo.pipelines.evaluate import create_pipeline as evaluate_pipeline
from mental_health_hpo.pipelines.hpo import create_pipeline as hpo_pipeline
from mental_health_hpo.training import TestSplitAccessError, TrainerConfig, train
from mental_health_hpo.training.inference import evaluate

TEST_INPUT = "model_input_test"


def test_only_evaluate_reads_the_test_split() -> None:
    hpo = hpo_pipeline()
    for node in hpo.nodes:
        assert TEST_INPUT not in node.inputs, node.name
    evaluate_nodes = evaluate_pipeline().nodes
    assert [n.name for n in evaluate_nodes if TEST_INPUT in n.inputs] == ["evaluate_best_trial"]
    # evaluate's only edge from hpo is the catalog entry hpo publishes (kedro-viz draws it)
    assert set(evaluate_pipeline().inputs()) == {
        "model_input_train",  # the TF-IDF baselines: fitted on train, chosen on validation
        "model_input_validation",
        "model_input_test",
        "best_checkpoint",
        "dataset_fingerprint",
        "params:evaluate",
    }
    assert "best_checkpoint" in hpo.all_outputs()
    assert TEST_INPUT in data_ingest_pipeline().all_outputs()


def test_training_refuses_test_rows(tmp_path: Path) -> None:
    rows = pd.DataFrame(
        {
            "post_id": ["p"],
            "text": ["x"],
            "criterion": ["FATIGUE"],
            "label": [0],
            "evidence_start": [-1],
            "evidence_end": [-1],
            "split": ["test"],
        }
    )
    config = ModelConfig(encoder=str(tmp_path), input_format="multi_label")
    with pytest.raises(TestSplitAccessError, match="test"):
        train(config, TrainerConfig(epochs=1), rows, rows.assign(split="validation"))
    with pytest.raises(TestSplitAccessError, match="test"):
        train(config, TrainerConfig(epochs=1), rows.assign(split="train"), rows)


def _params(tiny_model_dir: Path) -> dict[str, Any]:
    return {
        "data_ingest": {"source": {"synthetic": {"n_posts": 40}}},
        "hpo": {
            "study": {"n_trials": 2, "pruner": "none", "name": "e2e"},
            "base": {
                "model": {"encoder": str(tiny_model_dir)},
                "trainer": {"epochs": 1, "batch_size": 8},
            },
        },
    }


def _flat(test_metrics: dict[str, Any]) -> dict[str, float]:
    """The report's metrics under ``flatten_metrics`` names (no prefix)."""
    criteria = test_metrics["criteria_matching"]
    flat = {k: float(v) for k, v in criteria.items() if k != "per_criterion"}
    for entry in criteria["per_criterion"]:
        for key in ("f1", "precision", "recall", "pr_auc", "support"):
            flat[f"{key}_{entry['id']}"] = float(entry[key])
    for key, value in test_metrics["evidence_binding"].items():
        flat["evidence_f1" if key == "f1" else key] = float(value)
    return flat


def _assert_close(ours: dict[str, float], theirs: dict[str, float]) -> None:
    for key, value in ours.items():
        assert abs(value - theirs[key]) <= 1e-6, (key, value, theirs[key])


@pytest.mark.slow
def test_hpo_then_evaluate(
    kedro_project: Path,
    tiny_model_dir: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    run_pipeline(kedro_project, "hpo", _params(tiny_model_dir))
    capfd.readouterr()
    caplog.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_pipeline(kedro_project, "evaluate")
    # MLflow's warnings about logging the model the way it advises against (a pickled object,
    # no input example) are gone: the evaluate run prints only what concerns the user.
    printed = capfd.readouterr()
    for text in (printed.out, printed.err, caplog.text, *(str(w.message) for w in caught)):
        assert "CloudPickle" not in text and "input example was not provided" not in text, text

    study_dir = kedro_project / "experiments" / "study_e2e"
    report = json.loads((study_dir / "evaluation_report.json").read_text())
    validate_report(report)
    assert report["report_file_path"] == str(study_dir / "evaluation_report.json")
    assert report["study_id"] == "e2e" and report["optimization_metric_name"] == "val_f1_macro"
    reporting = kedro_project / "data" / "08_reporting"
    assert json.loads((reporting / "evaluation_report.json").read_text()) == report
    for name in (
        "summary_report.json",
        "evaluation_confusion_matrices.png",
        "evaluation_pr_curves.png",
        "evaluation_span_examples.html",
    ):
        assert (reporting / name).stat().st_size > 0, name
    summary = json.loads((study_dir / "summary_report.json").read_text())
    assert summary["trials_by_state"] == {"completed": 2}
    assert summary["top_trials"][0]["trial_id"] == report["best_trial_id"]
    assert summary["evaluation_report_path"] == report["report_file_path"]

    # The best trial is the completed one with the highest validation score.
    trials = {t.name: json.loads((t / "trial.json").read_text()) for t in study_dir.glob("trial_*")}
    best_value = max(r["best_value"] for r in trials.values())
    assert report["best_validation_score"] == best_value
    assert trials[report["best_trial_id"]]["best_value"] == best_value

    # The same checkpoint evaluated by hand gives the same numbers.
    first = report["evaluated_checkpoints"][0]
    config = ModelConfig.from_params(trials[report["best_trial_id"]]["config"]["model"])
    frame = pd.read_parquet(kedro_project / "data/05_model_input/model_input_test.parquet")
    by_hand = evaluate(config, Path(first["path"]) / "model.safetensors", frame, prefix="")
    _assert_close(_flat(report["test_metrics"]), by_hand)
    assert report["test_metrics"] == first["test_metrics"]

    # A second evaluate of the same study reproduces the numbers.
    run_pipeline(kedro_project, "evaluate")
    again = json.loads((study_dir / "evaluation_report.json").read_text())
    assert again["report_id"] == report["report_id"]
    _assert_close(_flat(again["test_metrics"]), _flat(report["test_metrics"]))

    _assert_mlflow(kedro_project, report)

    # --params evaluate.study_name selects a study through the catalog entry (here by its name)
    run_pipeline(kedro_project, "evaluate", {"evaluate": {"study_name": "e2e"}})
    named = json.loads((study_dir / "evaluation_report.json").read_text())
    assert (named["best_trial_id"], named["report_id"]) == (
        report["best_trial_id"],
        report["report_id"],
    )
    assert named["skipped_checkpoints"] == []

    # A corrupt published best (a hard link: the trial's file is the same) with nothing else
    # retained in the finished trial: evaluate fails and names every checkpoint it tried.
    published = kedro_project / "data/06_models/best_checkpoint/checkpoints"
    weights = sorted(published.rglob("model.safetensors"))
    for path in weights:
        path.write_bytes(bytes(path.stat().st_size))
    with pytest.raises(Exception, match="no checkpoint of the best trial verifies") as raised:
        run_pipeline(kedro_project, "evaluate")
    assert all(path.parent.name in str(raised.value) for path in weights)


def _assert_mlflow(project: Path, report: dict[str, Any]) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mental_health_hpo")
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.study_id = 'e2e' and metrics.test_f1_macro > -1",
    )
    evaluate_runs = [r for r in runs if r.info.run_name == "evaluate"]
    assert len(evaluate_runs) == 2  # one per evaluate session
    run = evaluate_runs[0]
    assert run.data.tags["best_trial_id"] == report["best_trial_id"]
    assert run.data.tags["dataset_fingerprint"] == report["config"]["dataset_fingerprint"]
    criteria = report["test_metrics"]["criteria_matching"]
    assert run.data.metrics["test_f1_macro"] == pytest.approx(criteria["f1_macro"], abs=1e-6)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"evaluation_report.json", "evaluation_pr_curves.png"} <= artifacts, artifacts

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    try:
        model = mlflow.pyfunc.load_model(run.data.tags["model_uri"])
    finally:
        mlflow.set_tracking_uri(previous)
    posts = pd.DataFrame({"post_id": ["x"], "text": ["I can't sleep and I feel worthless."]})
    out = model.predict(posts)
    assert len(out) == 9 and out["prob"].between(0, 1).all()
