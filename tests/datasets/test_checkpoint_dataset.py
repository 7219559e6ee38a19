"""CheckpointDataset: publishes the best checkpoint(s) of hpo and hands them to evaluate lazily."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from kedro.io import DataCatalog
from kedro.io.core import DatasetError

from mental_health_hpo.checkpointing import RetentionPolicy
from mental_health_hpo.datasets import BestCheckpoint, CheckpointDataset, CheckpointReference
from tests.checkpointing.support import open_manager


def write_trial(study: Path, name: str, values: list[float]) -> Path:
    """A trial still retaining its last and its best checkpoint (not finished)."""
    with open_manager(
        study / name / "checkpoints",
        metric_name="f1",
        async_save=False,
        check_disk=False,
        policy=RetentionPolicy(keep_last_n=1, keep_best_k=1, keep_best_trials=5),
    ) as manager:
        for epoch, value in enumerate(values):
            manager.save(
                epoch=epoch,
                step=epoch,
                metrics={"f1": value},
                weights={"w": torch.full((3,), float(value))},
                training_state={"epoch": epoch},
            )
    config = {"model": {"encoder": "tiny"}, "trainer": {"optimization_metric": "f1"}}
    number = int(name.rsplit("_", 1)[-1])
    (study / name / "trial.json").write_text(
        json.dumps({"state": "completed", "number": number, "config": config})
    )
    return study / name


def _publish(tmp_path: Path, trial: Path) -> CheckpointDataset:
    best = CheckpointDataset(filepath=trial, metric_name="f1").load()
    handoff = CheckpointDataset(filepath=tmp_path / "best_checkpoint")
    handoff.save(CheckpointReference(trial / "checkpoints", best.record.checkpoint_ids))
    return handoff


def test_publish_then_load_reads_the_record_not_the_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = tmp_path / "study_demo"
    write_trial(study, "trial_0000", [0.2, 0.6])
    trial = write_trial(study, "trial_0001", [0.9, 0.4])
    handoff = _publish(tmp_path, trial)

    import mental_health_hpo.checkpointing._verify as verify

    def no_weights(*args: object, **kwargs: object) -> None:
        raise AssertionError("loading best_checkpoint must not read weights")

    monkeypatch.setattr(verify, "load_checkpoint_ref", no_weights)
    best = handoff.load()
    assert isinstance(best, BestCheckpoint)
    record = best.record
    assert (record.study_id, record.trial_id, record.trial_number) == ("demo", "trial_0001", 1)
    assert record.metric_name == "f1" and record.value == pytest.approx(0.9)
    assert record.model_config == {"encoder": "tiny"}
    assert best.trial_dir == trial and best.study_dir == study
    (published,) = best.checkpoints
    assert published.checkpoints_dir == tmp_path / "best_checkpoint" / "checkpoints"
    source = trial / "checkpoints" / published.record.id / "model.safetensors"
    assert (published.path / "model.safetensors").stat().st_ino == source.stat().st_ino
    # the trial's other retained checkpoint, ranked by the metric, for a corrupt best
    assert [r.value for r in best.fallbacks] == [pytest.approx(0.4)]


def test_a_new_publish_replaces_the_previous_one(tmp_path: Path) -> None:
    study = tmp_path / "study_demo"
    better = write_trial(study, "trial_0001", [0.9])
    worse = write_trial(study, "trial_0000", [0.6])
    handoff = _publish(tmp_path, better)
    _publish(tmp_path, worse)
    assert handoff.load().record.trial_id == "trial_0000"  # exactly the new one
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".best_checkpoint")]
    with pytest.raises(DatasetError, match="not in"):
        handoff.save(CheckpointReference(worse / "checkpoints", ["ckpt-nope"]))
    assert handoff.load().record.trial_id == "trial_0000"  # a failed publish keeps the old one
    handoff.save(CheckpointReference(study, []))
    assert not handoff.exists()


def test_save_means_publish(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="publishes a CheckpointReference"):
        CheckpointDataset(filepath=tmp_path / "best_checkpoint").save({"weights": {}})  # type: ignore[arg-type]


def test_study_name_selects_another_study_through_the_catalog(tmp_path: Path) -> None:
    experiments = tmp_path / "experiments"
    write_trial(experiments / "study_other", "trial_0000", [0.3])
    write_trial(experiments / "study_other", "trial_0001", [0.8, 0.5])
    catalog = DataCatalog.from_config(
        {
            "best_checkpoint": {
                "type": "mental_health_hpo.datasets.CheckpointDataset",
                "filepath": str(tmp_path / "best_checkpoint"),  # nothing published here
                "load_args": {"study_name": "other", "experiments_dir": str(experiments)},
            }
        }
    )
    assert catalog.exists("best_checkpoint")
    best = catalog.load("best_checkpoint")
    assert (best.record.study_id, best.record.trial_id) == ("other", "trial_0001")
    assert best.value == pytest.approx(0.8)
    assert best.checkpoints[0].checkpoints_dir == experiments / "study_other/trial_0001/checkpoints"


def test_nothing_to_load_says_what_to_run(tmp_path: Path) -> None:
    dataset = CheckpointDataset(filepath=tmp_path / "best_checkpoint")
    assert not dataset.exists()
    with pytest.raises(DatasetError, match="kedro run --pipelines hpo"):
        dataset.load()
    missing = CheckpointDataset(
        filepath=tmp_path / "best_checkpoint",
        load_args={"study_name": "none", "experiments_dir": str(tmp_path)},
    )
    with pytest.raises(DatasetError, match="study_none"):
        missing.load()


def test_describe_reads_like_kedro_datasets(tmp_path: Path) -> None:
    dataset = CheckpointDataset(
        filepath=tmp_path / "best_checkpoint",
        metric_name="f1",
        metadata={"kedro-viz": {"layer": "models"}},
    )
    text = str(dataset)
    assert "CheckpointDataset" in text and "best_checkpoint" in text and "f1" in text
    assert dataset.metadata == {"kedro-viz": {"layer": "models"}}
    with pytest.raises(TypeError):
        CheckpointDataset(tmp_path, "f1")  # type: ignore[misc]  # keyword-only


def _dead_pid() -> int:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          check=True, capture_output=True, text=True)  # fmt: skip
    return int(done.stdout)


def test_a_publication_killed_between_its_renames_leaves_the_old_hand_off(tmp_path: Path) -> None:
    """Killed after moving the old folder away and before swapping the new one in: the next
    load finds the old hand-off again, and nothing the dead process left stays."""
    from mental_health_hpo.workspace.layout import PublishedLayout

    study = tmp_path / "study_demo"
    old = write_trial(study, "trial_0000", [0.6])
    new = write_trial(study, "trial_0001", [0.9])
    handoff = _publish(tmp_path, old)
    layout, dead = PublishedLayout(tmp_path / "best_checkpoint"), _dead_pid()
    layout.path.rename(layout.previous(dead))  # what the killed publication did...
    layout.staging(dead).mkdir()  # ...and the new folder it had staged
    assert handoff.load().record.trial_id == "trial_0000"  # the old one is back
    assert layout.leftovers() == []
    _publish(tmp_path, new)
    assert handoff.load().record.trial_id == "trial_0001"
    assert layout.leftovers() == []
    assert json.loads(layout.record.read_text())["trial_id"] == "trial_0001"
