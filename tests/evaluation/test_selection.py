"""Selection of study, trial and checkpoints; co-best ties give several evaluated checkpoints."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from mental_health_hpo.checkpointing import RetentionPolicy
from mental_health_hpo.constants import CRITERIA
from mental_health_hpo.evaluation import (
    SelectionError,
    build_report,
    evaluate_checkpoints,
    find_study_dir,
    select,
    select_best_trial,
    validate_report,
)
from mental_health_hpo.evaluation.run import model_signature
from mental_health_hpo.metrics import validation_metrics
from mental_health_hpo.metrics.thresholds import sentence_f1_macro, with_evidence_threshold
from mental_health_hpo.model import ModelConfig, build_model
from mental_health_hpo.training.inference import evaluate
from tests.checkpointing.support import finish, open_manager

from .support import FINGERPRINT, fake_baselines

METRIC = "val_f1_macro"


def _trial(study: Path, number: int, state: str, best_value: float | None, **extra: Any) -> Path:
    folder = study / f"trial_{number:04d}"
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    record = {"number": number, "state": state, "best_value": best_value, **extra}
    (folder / "trial.json").write_text(json.dumps(record))
    return folder


def test_best_trial_is_the_highest_completed_and_ties_go_to_the_lowest_number(
    tmp_path: Path,
) -> None:
    study = tmp_path / "study_x"
    _trial(study, 0, "completed", 0.4)
    _trial(study, 1, "pruned", 0.9)  # pruned and failed trials are never selected
    _trial(study, 2, "failed", None)
    _trial(study, 3, "completed", 0.6)
    _trial(study, 4, "completed", 0.6)
    _trial(study, 5, "completed", float("nan"))
    best = select_best_trial(study)
    assert (best.trial_id, best.number, best.best_value) == ("trial_0003", 3, 0.6)
    assert best.study_id == "x"


def test_no_completed_trial_is_an_error(tmp_path: Path) -> None:
    _trial(tmp_path / "study_x", 0, "pruned", 0.4)
    with pytest.raises(SelectionError, match="no completed trial"):
        select_best_trial(tmp_path / "study_x")


def test_study_folder_resolution(tmp_path: Path) -> None:
    old, new = tmp_path / "study_old", tmp_path / "study_new"
    old.mkdir()
    new.mkdir()
    os.utime(old, (1, 1))
    assert find_study_dir(tmp_path) == new  # latest by default
    assert find_study_dir(tmp_path, "old") == old  # by name
    named = {"study_id": "old", "study_dir": "/elsewhere/study_old"}  # a moved project
    assert find_study_dir(tmp_path, None, named) == old
    assert find_study_dir(tmp_path, None, {"study_dir": str(old)}) == old
    with pytest.raises(SelectionError, match="not found"):
        find_study_dir(tmp_path, "missing")
    with pytest.raises(SelectionError, match="no study folder"):
        find_study_dir(tmp_path / "empty")


def _frame(n_posts: int = 3) -> pd.DataFrame:
    text = "I can't sleep at night and I feel tired all day long."
    rows = [
        {
            "post_id": f"p{i}",
            "text": text,
            "criterion": criterion,
            "label": int(criterion == "SLEEP_ISSUES"),
            "evidence_start": 0 if criterion == "SLEEP_ISSUES" else -1,
            "evidence_end": 25 if criterion == "SLEEP_ISSUES" else -1,
            "split": "test",
        }
        for i in range(n_posts)
        for criterion in CRITERIA
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def tie_study(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study of one completed trial whose epochs 0 and 1 tie on the metric (co-best)."""
    study = tmp_path_factory.mktemp("experiments") / "study_tie"
    config = ModelConfig(
        encoder=str(tiny_model_dir), input_format="multi_label", max_length=64, stride=16
    )
    folder = _trial(
        study,
        0,
        "completed",
        0.5,
        config={"model": config.public_dict(), "trainer": {"optimization_metric": METRIC}},
        seeds={"seed.seed": 0},
    )
    model = build_model(config)
    manager = open_manager(
        folder / "checkpoints",
        policy=RetentionPolicy(keep_last_n=1, keep_best_k=1),
        metric_name=METRIC,
        architecture=model_signature(model),
        async_save=False,
        check_disk=False,
    )
    with manager:
        for epoch, value in enumerate((0.5, 0.5, 0.2)):
            torch.manual_seed(epoch)
            with torch.no_grad():  # distinct weights per epoch
                for parameter in model.criteria_head.parameters():
                    parameter.add_(0.05 * torch.randn_like(parameter))
            manager.save(
                epoch=epoch,
                step=epoch + 1,
                metrics={METRIC: value},
                weights=model.state_dict(),
                force=True,
            )
        finish(manager)
    return study


def test_co_best_checkpoints_are_all_evaluated(tie_study: Path) -> None:
    selection = select(tie_study.parent, "tie")
    assert [r.record.epoch for r in selection.checkpoints] == [0, 1]
    assert selection.metric_name == METRIC and selection.primary.record.epoch == 0
    config = ModelConfig.from_params(selection.trial.record["config"]["model"])
    frame = _frame()
    evaluations = evaluate_checkpoints(config, selection.checkpoints, frame)
    report = build_report(
        selection, evaluations, FINGERPRINT, baselines=fake_baselines(evaluations[0].merged)
    )
    validate_report(json.loads(json.dumps(report)))
    entries = report["evaluated_checkpoints"]
    assert [e["checkpoint_id"] for e in entries] == [r.record.id for r in selection.checkpoints]
    assert all(e["co_best"] for e in entries) and entries[0]["sha256"] != entries[1]["sha256"]
    assert report["test_metrics"] == entries[0]["test_metrics"]  # the first co-best by epoch
    # Each entry carries its own metrics, equal to evaluating that checkpoint by hand.
    for evaluation, entry in zip(evaluations, entries, strict=True):
        by_hand = evaluate(config, evaluation.weights_file, frame, prefix="")
        ours = evaluation.flat("")
        assert ours.keys() == by_hand.keys()
        assert all(abs(ours[k] - by_hand[k]) <= 1e-6 for k in ours)
        assert entry["test_metrics"]["criteria_matching"]["f1_macro"] == pytest.approx(
            by_hand["f1_macro"], abs=1e-6
        )


def test_a_corrupted_checkpoint_is_refused(tie_study: Path, tmp_path: Path) -> None:
    from mental_health_hpo.checkpointing._errors import CheckpointIntegrityError

    study = tmp_path / "study_tie"
    shutil.copytree(tie_study, study)
    selection = select(tmp_path, "tie")
    weights = selection.primary.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    config = ModelConfig.from_params(selection.trial.record["config"]["model"])
    with pytest.raises(CheckpointIntegrityError, match="SHA-256"):
        evaluate_checkpoints(config, [selection.primary], _frame(1))


def test_cli_prints_a_metrics_table(tie_study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mental_health_hpo.evaluation.__main__ import main

    data_dir = tie_study.parent / "model_input"
    data_dir.mkdir(exist_ok=True)
    _frame(2).assign(split="validation").to_parquet(data_dir / "model_input_validation.parquet")
    trial = tie_study / "trial_0000"
    assert main(["--trial", str(trial), "--split", "validation", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("trial_0000 / ckpt-") == 2  # both co-best checkpoints
    assert "f1_macro" in out and "SLEEP_ISSUES" in out and "[[" in out
    ckpt = select(tie_study.parent, "tie").checkpoints[1]
    args = ["--checkpoint", str(ckpt.path), "--split", "validation", "--data-dir", str(data_dir)]
    assert main([*args, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["title"].endswith(f"{ckpt.record.id} on validation")
    assert "validation_f1_macro" in printed
    assert main(["--trial", str(trial), "--checkpoint", "ckpt-nope"]) == 2


def test_the_evidence_threshold_is_chosen_on_validation_then_applied_to_test(
    tie_study: Path,
) -> None:
    selection = select(tie_study.parent, "tie")
    config = ModelConfig.from_params(selection.trial.record["config"]["model"])
    test, validation = _frame(2), _frame(3)
    (plain,) = evaluate_checkpoints(config, [selection.primary], test)
    grid = (0.05, 0.5, 0.95)
    (tuned,) = evaluate_checkpoints(
        config, [selection.primary], test, validation=validation, evidence_thresholds=grid
    )
    assert plain.evidence_threshold is None
    chosen = tuned.evidence_threshold
    assert chosen is not None and chosen.grid == grid
    # The choice is the grid value with the best validation F1, computed here independently.
    (on_validation,) = evaluate_checkpoints(config, [selection.primary], validation)
    f1_at = {t: sentence_f1_macro(with_evidence_threshold(on_validation.merged, t)) for t in grid}
    assert f1_at[chosen.value] == max(f1_at.values())
    assert chosen.validation_f1_macro == pytest.approx(f1_at[chosen.value])
    # Test is scored once, with the chosen threshold: its sentences are those at or above it.
    expected = with_evidence_threshold(plain.merged, chosen.value)
    assert list(tuned.merged["pred_sentences"]) == list(expected["pred_sentences"])
    assert tuned.metrics["sentence_evidence"] == validation_metrics(expected)["sentence_evidence"]
    report = build_report(selection, [tuned], FINGERPRINT, baselines=fake_baselines(tuned.merged))
    validate_report(json.loads(json.dumps(report)))
    entry = report["evaluated_checkpoints"][0]["evidence_threshold"]
    assert entry["chosen_on"] == "validation" and entry["value"] == chosen.value
