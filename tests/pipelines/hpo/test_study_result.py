"""The study result names what the one best rule keeps, and a stale result is derived again."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mental_health_hpo.checkpointing import (
    CheckpointManager,
    CheckpointOptions,
    RetentionPolicy,
    StudyRetention,
    read_manifest,
)
from mental_health_hpo.datasets import CheckpointDataset, CheckpointReference
from mental_health_hpo.hpo.coordination import coordination_for
from mental_health_hpo.hpo.results import study_result
from mental_health_hpo.hpo.runner import StudyHooks, StudyRunner, TrialContext
from mental_health_hpo.hpo.search_space import SearchSpace
from mental_health_hpo.hpo.study import StudyConfig, open_study

SPACE = SearchSpace.from_params({"x": {"type": "float", "low": 0.0, "high": 1.0}})
METRIC = "val_f1_macro"


def _objective(context: TrialContext) -> float:
    """Two epochs, the second better: the trial's best is its epoch 1."""
    values = [0.2 * context.sampled["x"], 0.4 * context.sampled["x"] + 0.1]
    options = CheckpointOptions(metric_name=METRIC, watch_disk=False)
    model = torch.nn.Linear(4, 2)
    with CheckpointManager(context.folder.checkpoints, options) as checkpoints:
        for epoch, value in enumerate(values):
            checkpoints.save(
                epoch=epoch,
                step=(epoch + 1) * 4,
                metrics={METRIC: value},
                weights=model.state_dict(),
                training_state={"epoch": epoch},
            )
    context.folder.update(best_value=values[1], best_epoch=1)
    return values[1]


def test_a_result_naming_a_gone_checkpoint_is_derived_again(tmp_path: Path) -> None:
    study_dir = tmp_path / "study_fix"
    config = StudyConfig(name="fix", storage="sqlite:///optuna.db", n_trials=2, pruner="none")
    study = open_study(config, SPACE, tmp_path)
    coordination = coordination_for(config, tmp_path)
    retention = StudyRetention(study_dir, RetentionPolicy(), METRIC, coordination.lock)
    hooks = StudyHooks(on_trial_end=lambda frozen, folder: retention.trial_finished(folder.path))
    StudyRunner(study, config, SPACE, {}, _objective, study_dir, coordination, hooks).run()

    def derive() -> dict:
        return study_result(study, config, study_dir, METRIC, coordination, retention)

    first = derive()
    checkpoint = first["best"]["checkpoint"]
    kept = [r.id for r in read_manifest(Path(checkpoint["trial_dir"]) / "checkpoints").checkpoints]
    assert checkpoint["checkpoint_ids"] == kept and kept[0].startswith("ckpt-e0001")

    # A result written by an older rule (or before its trial was finished) names the pruned
    # epoch 0: it is derived again from the manifests instead of failing publication for good.
    path = study_dir / "study_result.json"
    stale = json.loads(path.read_text())
    stale["best"]["checkpoint"]["checkpoint_ids"] = [kept[0].replace("e0001", "e0000"), *kept]
    path.write_text(json.dumps(stale))
    repaired = derive()
    assert repaired["best"]["checkpoint"]["checkpoint_ids"] == kept
    assert json.loads(path.read_text())["best"]["checkpoint"]["checkpoint_ids"] == kept
    published = CheckpointDataset(filepath=tmp_path / "published", metric_name=METRIC)
    published.save(CheckpointReference.of_study_result(repaired))
    assert [r.record.id for r in published.load().checkpoints] == kept
    assert derive() == repaired  # a result that names the best is returned as it is
