"""CheckpointDataset: the catalog hands the best verified checkpoint from hpo to evaluate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from kedro.io import DataCatalog
from kedro.io.core import DatasetError

from mental_health_hpo.checkpointing import RetentionPolicy
from mental_health_hpo.datasets import BestCheckpoint, CheckpointDataset, CheckpointPayload
from tests.checkpointing.support import finish, open_manager


def write_trial(study: Path, name: str, values: list[float]) -> None:
    with open_manager(
        study / name / "checkpoints",
        metric_name="f1",
        async_save=False,
        check_disk=False,
        policy=RetentionPolicy(keep_best_trials=5),
    ) as manager:
        for epoch, value in enumerate(values):
            weights = {"w": torch.full((3,), float(value))}
            manager.save(
                epoch=epoch,
                step=epoch,
                metrics={"f1": value},
                weights=weights,
                training_state={"epoch": epoch},
            )
        finish(manager)


def test_loads_best_of_study(tmp_path: Path) -> None:
    study = tmp_path / "study_1"
    write_trial(study, "trial_0", [0.2, 0.6])
    write_trial(study, "trial_1", [0.9, 0.4])
    dataset = CheckpointDataset(filepath=study, metric_name="f1")
    assert dataset.exists()
    best = dataset.load()
    assert isinstance(best, BestCheckpoint)
    assert best.trial_dir.name == "trial_1" and best.value == 0.9
    assert torch.equal(best.weights["w"], torch.full((3,), 0.9))
    assert best.checkpoint_dir == study / "trial_1" / "checkpoints" / best.record.id


def test_corrupt_best_falls_back_to_next_valid(tmp_path: Path, caplog) -> None:
    study = tmp_path / "study_1"
    write_trial(study, "trial_0", [0.6])
    write_trial(study, "trial_1", [0.9])
    victim = next((study / "trial_1").rglob("model.safetensors"))
    victim.write_bytes(victim.read_bytes()[:-4])
    best = CheckpointDataset(filepath=study, metric_name="f1").load()
    assert best.trial_dir.name == "trial_0"
    assert "skipping" in caplog.text


def test_missing_study_raises_dataset_error(tmp_path: Path) -> None:
    dataset = CheckpointDataset(filepath=tmp_path / "study_none", metric_name="f1")
    assert not dataset.exists()
    with pytest.raises(DatasetError, match="no committed checkpoint"):
        dataset.load()


def test_save_then_load_roundtrip_through_catalog(tmp_path: Path) -> None:
    trial = tmp_path / "study_2" / "trial_3"
    catalog = DataCatalog.from_config(
        {
            "best_checkpoint": {
                "type": "mental_health_hpo.datasets.CheckpointDataset",
                "filepath": str(trial),
                "metric_name": "f1",
                "save_args": {"policy": {"keep_last_n": 1, "keep_best_k": 1}},
                "load_args": {"with_training_state": True},
            }
        }
    )
    catalog.save(
        "best_checkpoint",
        CheckpointPayload(0, 5, {"f1": 0.7}, {"w": torch.ones(2)}, {"epoch": 0}),
    )
    second = {"epoch": 1, "step": 9, "metrics": {"f1": 0.3}, "weights": {"w": torch.zeros(2)}}
    catalog.save("best_checkpoint", {**second, "training_state": {"epoch": 1}})
    best = catalog.load("best_checkpoint")
    assert best.record.epoch == 0 and torch.equal(best.weights["w"], torch.ones(2))
    assert best.training_state is None  # demoted to weights-only: it is not the latest
    assert (trial / "checkpoints" / "manifest.json").exists()


def test_describe_reads_like_kedro_datasets(tmp_path: Path) -> None:
    dataset = CheckpointDataset(
        filepath=tmp_path / "study_1", metric_name="f1", metadata={"kedro-viz": {"layer": "models"}}
    )
    text = str(dataset)
    assert "CheckpointDataset" in text and "study_1" in text and "f1" in text
    assert dataset.metadata == {"kedro-viz": {"layer": "models"}}
    with pytest.raises(TypeError):
        CheckpointDataset(tmp_path, "f1")  # keyword-only


def test_a_reference_is_published_by_hard_links_and_replaces_the_previous_one(
    tmp_path: Path,
) -> None:
    from mental_health_hpo.datasets import CheckpointReference

    study = tmp_path / "study_1"
    write_trial(study, "trial_0", [0.2, 0.6])
    write_trial(study, "trial_1", [0.9, 0.4])
    handoff = CheckpointDataset(filepath=tmp_path / "best_checkpoint")
    best = CheckpointDataset(filepath=study / "trial_1", metric_name="f1").load()
    handoff.save(CheckpointReference(study / "trial_1" / "checkpoints", [best.record.id]))
    loaded = handoff.load()
    assert loaded.value == pytest.approx(0.9) and loaded.record.id == best.record.id
    source = best.checkpoint_dir / "model.safetensors"
    published = loaded.checkpoint_dir / "model.safetensors"
    assert published.stat().st_ino == source.stat().st_ino  # a hard link, no copy

    other = CheckpointDataset(filepath=study / "trial_0", metric_name="f1").load()
    handoff.save(CheckpointReference(study / "trial_0" / "checkpoints", [other.record.id]))
    assert handoff.load().value == pytest.approx(0.6)  # exactly the new one, not the better old
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".best_checkpoint")]

    with pytest.raises(DatasetError, match="not in"):
        handoff.save(CheckpointReference(study / "trial_0" / "checkpoints", ["ckpt-nope"]))
    assert handoff.load().value == pytest.approx(0.6)  # a failed publish keeps the old one
    handoff.save(CheckpointReference(study, []))
    assert not handoff.exists()
