"""One worker of a study whose only trial is taken over while this worker is stopped (SIGSTOP).

python stale_worker.py STORAGE_URL STUDY_DIR

What the hpo node does with checkpoints, minus Kedro, MLflow and the model: the real runner
(leases, take-over, crash and pause points from the environment), the real checkpoint manager
with the lease check before each commit (``TrialContext.holds_lease``), and study retention at
the trial's end. Each epoch commits a tiny model's weights and training state; the weights carry
a per-process offset, so a stale worker's bytes differ from its successor's, as two real
trainings of one epoch do (different batches after a resume, non-deterministic kernels).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import torch

from mental_health_hpo.checkpointing import (
    CheckpointManager,
    CheckpointOptions,
    RetentionPolicy,
    StudyRetention,
)
from mental_health_hpo.hpo.coordination import coordination_for
from mental_health_hpo.hpo.runner import StudyHooks, StudyRunner, TrialContext
from mental_health_hpo.hpo.search_space import SearchSpace
from mental_health_hpo.hpo.study import StudyConfig, open_study

SPACE = SearchSpace.from_params({"x": {"type": "float", "low": 0.0, "high": 1.0}})
METRIC = "val_f1_macro"
EPOCHS = 3
LEASE_S = 2.0


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    url, study_dir = sys.argv[1], Path(sys.argv[2])
    config = StudyConfig(name="stale", storage=url, n_trials=1, pruner="none", lease_s=LEASE_S)
    study = open_study(config, SPACE, study_dir.parent)
    coordination = coordination_for(config, study_dir.parent)
    retention = StudyRetention(study_dir, RetentionPolicy(), METRIC, coordination.lock)

    def objective(context: TrialContext) -> float:
        # Every checkpoint of a running trial kept: the stale save meets its successor's.
        policy = RetentionPolicy(keep_last_n=EPOCHS)
        options = CheckpointOptions(metric_name=METRIC, policy=policy, watch_disk=False)
        folder = context.folder.checkpoints
        with CheckpointManager(folder, options, still_owner=context.holds_lease) as checkpoints:
            latest = checkpoints.load_latest()
            model = torch.nn.Linear(4, 2)
            if latest is not None:
                model.load_state_dict(latest.weights)
            start = 0 if latest is None else latest.record.epoch + 1
            for epoch in range(start, EPOCHS):
                with torch.no_grad():
                    model.weight.add_(0.01)
                    model.bias.add_((os.getpid() % 997) * 1e-4)  # this worker's own bytes
                checkpoints.save(
                    epoch=epoch,
                    step=(epoch + 1) * 4,
                    metrics={METRIC: 0.1 * (epoch + 1), "loss": 1.0},
                    weights=model.state_dict(),
                    training_state={"epoch": epoch, "pid": os.getpid()},
                )
        return 0.1 * EPOCHS

    hooks = StudyHooks(on_trial_end=lambda frozen, folder: retention.trial_finished(folder.path))
    StudyRunner(study, config, SPACE, {}, objective, study_dir, coordination, hooks).run()


if __name__ == "__main__":
    main()
