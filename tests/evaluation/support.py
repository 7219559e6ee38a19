"""Builders shared by the evaluation tests: hand-made predictions and fake selections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mental_health_hpo.checkpointing import CheckpointRef
from mental_health_hpo.checkpointing._manifest import WEIGHTS_FILE, CheckpointRecord, FileEntry
from mental_health_hpo.evaluation.baselines import BaselineResult, split_ids
from mental_health_hpo.evaluation.run import CheckpointEvaluation
from mental_health_hpo.evaluation.selection import Selection, TrialSelection
from mental_health_hpo.metrics import validation_metrics

TEXT = "I can't sleep at all. I am so tired. Nothing else."


def hand_made_merged() -> pd.DataFrame:
    """Three posts x two criteria; known answers worked out in the tests."""
    return pd.DataFrame(
        {
            "post_id": ["a", "a", "b", "b", "c", "c"],
            "criterion": ["SLEEP_ISSUES", "FATIGUE"] * 3,
            "label": [1, 1, 0, 0, 1, 0],
            "alignment": ["exact", "exact", "none", "none", "exact", "none"],
            "gold_spans": [[[0, 21]], [[22, 36]], [], [], [[0, 21]], []],
            "text": [TEXT] * 6,
            "prob": [0.9, 0.4, 0.6, 0.1, 0.9, 0.2],
            "pred_start": [0, 22, -1, -1, 0, 5],
            "pred_end": [21, 36, -1, -1, 10, 9],
        }
    )


def fake_ref(tmp_path: Path, ckpt_id: str, epoch: int, value: float) -> CheckpointRef:
    record = CheckpointRecord(
        id=ckpt_id,
        epoch=epoch,
        step=10 * (epoch + 1),
        metrics={"val_f1_macro": value},
        kind="weights",
        files={WEIGHTS_FILE: FileEntry(f"{ckpt_id}/{WEIGHTS_FILE}", "ab" * 32, 10)},
        created_at="2026-01-01T00:00:00+00:00",
    )
    return CheckpointRef(
        tmp_path / "trial_0001",
        tmp_path / "trial_0001" / "checkpoints",
        record,
        "val_f1_macro",
        value,
    )


def fake_selection(tmp_path: Path, n_checkpoints: int = 1) -> tuple[Selection, list[Any]]:
    record = {
        "state": "completed",
        "best_value": 0.5,
        "number": 1,
        "config": {
            "model": {"encoder": "packaged:all-minilm-l6-v2"},
            "trainer": {"optimization_metric": "val_f1_macro", "seed": 42},
        },
        "seeds": {"seed.seed": 42},
        "params": {"trainer.lr": 0.001},
    }
    study_dir = tmp_path / "study_s1"
    trial = TrialSelection(study_dir, study_dir / "trial_0001", "trial_0001", 1, 0.5, record)
    refs = [fake_ref(tmp_path, f"ckpt-e{e:04d}-s0000{e}0", e, 0.5) for e in range(n_checkpoints)]
    metrics = validation_metrics(hand_made_merged())
    evaluations = [CheckpointEvaluation(ref, metrics, hand_made_merged()) for ref in refs]
    return Selection(trial, "val_f1_macro", refs), evaluations


FINGERPRINT = {"source": "synthetic", "fingerprint": "f" * 16}


def fake_baselines(merged: pd.DataFrame | None = None) -> BaselineResult:
    """A baseline scored on the hand-made posts: always negative, no evidence (weaker than the
    hand-made model on criteria, and with no sentence evidence at all)."""
    frame = hand_made_merged() if merged is None else merged
    weak = frame.assign(prob=0.0, pred_start=-1, pred_end=-1)
    metrics = validation_metrics(weak)
    ids = split_ids(frame)
    return BaselineResult(
        metrics={
            "criteria": metrics["criteria"],
            "sentence_evidence": metrics["sentence_evidence"],
        },
        selected={"criteria_C": 1.0},
        splits={"train": ids, "validation": ids, "test": ids},
    )
