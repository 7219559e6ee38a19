"""One worker of a study whose only trial scores the same at both epochs (a co-best tie).

python tie_worker.py STORAGE_URL STUDY_DIR PUBLISH_DIR

What the hpo node does, minus Kedro and MLflow: the real runner (leases, take-over, the
``after_tell`` crash point), the real checkpoint manager, study retention at each trial end,
then ``study_result``, publication through ``CheckpointDataset`` and evaluate's selection and
verified load of the published checkpoints. The objective trains nothing: each epoch commits a
tiny model's weights with the constant metric ``TIE``, so the tie is certain, not luck. Crash and
pause points come from the environment (``MH_HPO_CRASH_AT``, ``MH_HPO_PAUSE_AT``).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import torch

from mental_health_hpo.checkpointing import (
    CheckpointManager,
    CheckpointOptions,
    RetentionPolicy,
    StudyRetention,
    load_checkpoint_ref,
)
from mental_health_hpo.datasets import CheckpointDataset, CheckpointReference
from mental_health_hpo.evaluation.selection import select
from mental_health_hpo.hpo.coordination import coordination_for
from mental_health_hpo.hpo.results import check_complete
from mental_health_hpo.hpo.results import study_result as derive_result
from mental_health_hpo.hpo.runner import StudyHooks, StudyRunner, TrialContext
from mental_health_hpo.hpo.search_space import SearchSpace
from mental_health_hpo.hpo.study import StudyConfig, open_study

SPACE = SearchSpace.from_params({"x": {"type": "float", "low": 0.0, "high": 1.0}})
METRIC = "val_f1_macro"
TIE = 0.111
EPOCHS = 2
LEASE_S = 2.0


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    url, study_dir, publish_dir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    config = StudyConfig(name="tie", storage=url, n_trials=1, pruner="none", lease_s=LEASE_S)
    study = open_study(config, SPACE, study_dir.parent)
    coordination = coordination_for(config, study_dir.parent)
    retention = StudyRetention(study_dir, RetentionPolicy(), METRIC, coordination.lock)

    def objective(context: TrialContext) -> float:
        options = CheckpointOptions(metric_name=METRIC, watch_disk=False)
        with CheckpointManager(context.folder.checkpoints, options) as checkpoints:
            latest = checkpoints.load_latest()
            model = torch.nn.Linear(4, 2)
            if latest is not None:
                model.load_state_dict(latest.weights)
            start = 0 if latest is None else latest.record.epoch + 1
            for epoch in range(start, EPOCHS):
                with torch.no_grad():
                    model.weight.add_(0.01)  # a model that changes, a metric that does not
                checkpoints.save(
                    epoch=epoch,
                    step=(epoch + 1) * 4,
                    metrics={METRIC: TIE, "loss": 1.0},
                    weights=model.state_dict(),
                    training_state={"epoch": epoch},
                )
        context.folder.update(best_value=TIE, best_epoch=0)
        return TIE

    hooks = StudyHooks(on_trial_end=lambda frozen, folder: retention.trial_finished(folder.path))
    run = StudyRunner(study, config, SPACE, {}, objective, study_dir, coordination, hooks).run()
    assert run.tally is not None
    check_complete(run.tally)
    result = derive_result(study, config, study_dir, METRIC, coordination, retention)
    dataset = CheckpointDataset(filepath=publish_dir, metric_name=METRIC)
    dataset.save(CheckpointReference.of_study_result(result))
    # What evaluate does: the published checkpoints, verified and loaded, and the selection.
    best = dataset.load()
    for ref in best.checkpoints:
        load_checkpoint_ref(ref)
    chosen = select(study_dir.parent, "tie")
    print(
        json.dumps(
            {
                "result": result["best"]["checkpoint"]["checkpoint_ids"],
                "published": [r.record.id for r in best.checkpoints],
                "selected": [r.record.id for r in chosen.checkpoints],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
