"""evaluate falls back past a corrupt best checkpoint to the next valid retained one, says so, or
fails listing every checkpoint it tried (a real tiny model, real checkpoint files)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mental_health_hpo.checkpointing import CheckpointSettings, RetentionPolicy, RunCheckpoints
from mental_health_hpo.datasets import CheckpointDataset
from mental_health_hpo.evaluation import model_config_of
from mental_health_hpo.evaluation.run import NoValidCheckpointError, evaluate_with_fallback
from mental_health_hpo.model import ModelConfig
from mental_health_hpo.training import TrainerConfig, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from data_helpers import make_model_input


@pytest.fixture(scope="module")
def trial_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A trial of two epochs that retains both checkpoints."""
    trial = tmp_path_factory.mktemp("study_fallback") / "trial_0000"
    config = ModelConfig(encoder=str(tiny_model_dir))
    train(
        config,
        TrainerConfig(epochs=2, batch_size=8, seed=3),
        make_model_input(6, "train"),
        make_model_input(4, "validation"),
        checkpoints=RunCheckpoints(
            trial / "checkpoints",
            CheckpointSettings(policy=RetentionPolicy(keep_last_n=2, keep_best_k=1)),
        ),
    )
    record = {"state": "completed", "number": 0, "config": {"model": config.public_dict()}}
    (trial / "trial.json").write_text(json.dumps(record))
    # Two epochs of a tiny model often score the same: make epoch 0 the one best checkpoint
    # (the manifest's metric values are not covered by the files' SHA-256, the weights are).
    manifest_path = trial / "checkpoints" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["checkpoints"]:
        entry["metrics"]["val_f1_macro"] = 0.9 if entry["epoch"] == 0 else 0.5
    manifest_path.write_text(json.dumps(manifest))
    return trial


def _corrupt(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-8] + bytes(8))


def test_a_corrupt_best_falls_back_then_fails_listing_what_was_tried(trial_dir: Path) -> None:
    best = CheckpointDataset(filepath=trial_dir).load()
    assert len(best.checkpoints) == 1 and len(best.fallbacks) == 1
    frame = make_model_input(3, "test")
    config = model_config_of(best.record.trial_record)
    primary, fallback = best.checkpoints[0], best.fallbacks[0]

    _corrupt(primary.path / "model.safetensors")
    evaluations, skipped = evaluate_with_fallback(config, best.checkpoints, best.fallbacks, frame)
    assert [e.ref.record.id for e in evaluations] == [fallback.record.id]
    assert [s.checkpoint_id for s in skipped] == [primary.record.id]
    assert "SHA-256" in skipped[0].reason or "sha256" in skipped[0].reason.lower()

    _corrupt(fallback.path / "model.safetensors")
    with pytest.raises(NoValidCheckpointError) as raised:
        evaluate_with_fallback(config, best.checkpoints, best.fallbacks, frame)
    message = str(raised.value)
    assert primary.record.id in message and fallback.record.id in message
    assert "kedro run --pipelines hpo" in message
