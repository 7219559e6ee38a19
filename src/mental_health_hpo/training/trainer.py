"""Train one configuration; killed at any point, it resumes to the same weights and metrics.

Resume design (the simplest correct one): a checkpoint is committed at the end of every epoch,
holding weights, optimizer, scheduler, grad scaler, every RNG state and the data position
(next epoch, batch 0). The epoch's batch order is a pure function of (seed, epoch), and the RNG
state at an epoch's start is the one saved at the previous epoch's end, so after a kill anywhere
inside epoch e the run restarts from the checkpoint of epoch e - 1 and replays epoch e exactly:
the same batches, the same dropout masks, the same updates. Nothing mid-epoch needs saving, and
a run that was killed ends bit-identical (on CPU) to one that never stopped. The sampler's
position is still saved and honoured, so a checkpoint taken mid-epoch would resume correctly.
The last epoch's checkpoint keeps the weights only: nothing resumes after it, and a run started
again once it is committed rebuilds its result from the journal without training.

Stopping: ``on_epoch`` returning True ends the run after that epoch's checkpoint (pruning, a
time budget seen at an epoch's end); a ``StopCheck`` ends it inside an epoch (a time budget seen
every few steps). An epoch ended by the check is dropped whole: not validated, not checkpointed,
not published, so every recorded epoch is a full one and the best value is that of the full
epochs before it. The weights returned are the partial epoch's; the checkpoints are not.

Metrics leave only through callbacks (no mlflow, no kedro here): ``on_metrics`` receives each
epoch's ``MetricRecord`` after the checkpoint core has committed it, so a published step is always
backed by a checkpoint and a resumed run starts logging after ``last_logged_step``.

The pieces live next door: :mod:`.run_state` (what a checkpoint keeps of a run),
:mod:`.epoch_loop` (one pass over an epoch's batches), :mod:`.inference` (validation and
prediction), :mod:`.run_checkpoints` (the checkpoint core's side), :mod:`.devices`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mental_health_hpo.checkpointing import (
    Checkpointer,
    CheckpointError,
    RunCheckpoints,
)
from mental_health_hpo.model import DualAgentModel, ModelConfig
from mental_health_hpo.training.batching import DynamicPaddingCollator, LengthGroupedSampler
from mental_health_hpo.training.config import TrainerConfig, check_optimization_metric
from mental_health_hpo.training.devices import autocast_dtype, resolve_device
from mental_health_hpo.training.epoch_loop import EpochLoop, StopCheck, steps_per_epoch
from mental_health_hpo.training.features import FeatureCache
from mental_health_hpo.training.inference import (
    available_metric_names,
    load_features,
    model_for,
    validate,
)
from mental_health_hpo.training.optim import Optimization
from mental_health_hpo.training.progress import EpochReporter, progress, resume_message
from mental_health_hpo.training.run_checkpoints import (
    MetricsCallback,
    OncePerStepPublisher,
    architecture_of,
    check_same_config,
    config_hash,
    trial_label,
)
from mental_health_hpo.training.run_state import RunState
from mental_health_hpo.training.seeds import SeedRecord, seed_everything
from mental_health_hpo.training.split_guard import TRAINING_GUARD
from mental_health_hpo.workspace import Storage

logger = logging.getLogger(__name__)

#: ``train``'s default: no checkpoints (a frozen value, so one instance serves every call).
_WITHOUT_CHECKPOINTS = RunCheckpoints.disabled()


@dataclass(frozen=True)
class EpochResult:
    """What ``on_epoch`` sees after each epoch (``epoch`` counts from 0)."""

    epoch: int
    step: int
    metrics: dict[str, float]
    objective: float
    best_objective: float
    is_best: bool


@dataclass(frozen=True)
class TrainResult:
    """The outcome of :func:`train`.

    ``epochs_completed`` counts full epochs (resumed ones included); ``stopped_early`` is True
    when ``on_epoch`` or the stop check ended the run before ``epochs``, ``stopped_mid_epoch``
    when the stop check did, dropping the epoch in progress. ``global_step`` counts every
    optimizer step taken, a dropped epoch's too.
    """

    metrics: dict[str, float]
    best_metric: float
    best_epoch: int
    seeds: SeedRecord
    last_logged_step: int | None
    resumed_from: dict[str, int] | None
    checkpoint_dir: Path | Storage | None
    epochs_completed: int
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)
    train_samples_per_second: float = 0.0
    model: DualAgentModel | None = field(default=None, repr=False, compare=False)
    stopped_mid_epoch: bool = False
    global_step: int = 0


def train(
    model_config: ModelConfig,
    trainer_config: TrainerConfig,
    train_df: pd.DataFrame,
    validation_df: pd.DataFrame,
    *,
    checkpoints: RunCheckpoints = _WITHOUT_CHECKPOINTS,
    on_epoch: Callable[[EpochResult], bool | None] | None = None,
    on_metrics: MetricsCallback | None = None,
    replay_journal: bool = False,
    feature_cache: FeatureCache | None = None,
    model: DualAgentModel | None = None,
    stop_check: StopCheck | None = None,
) -> TrainResult:
    """Train ``model_config`` with ``trainer_config``; resume from ``checkpoints`` if they hold one.

    ``checkpoints``: the run's folder and checkpoint settings, opened here once the model is built
    (default: none; metrics still reach ``on_metrics``, nothing is written). ``on_epoch``
    returning True stops after that epoch's checkpoint (Optuna pruning). ``on_metrics`` gets the
    committed ``MetricRecord``s (from the checkpoint writer's thread when saving asynchronously);
    with ``replay_journal`` a resumed run first replays the journal of earlier epochs (same
    timestamps, so an idempotent publisher can repair a publish lost in the crash).
    ``model``: an already built model to train in place (benchmarks; skips encoder loading).
    ``stop_check``: asked every few optimizer steps; when it fires the epoch in progress is
    dropped and the run ends with the epochs completed before it.
    """
    config = trainer_config
    TRAINING_GUARD.check_frames([("train_df", train_df), ("validation_df", validation_df)])
    check_optimization_metric(config.optimization_metric, available_metric_names())
    seeds = seed_everything(config.seed, config.deterministic)
    device = resolve_device(config.device)
    amp_dtype = autocast_dtype(config, device)

    # ---- model and data
    net = model_for(model_config, train_df, model).to(device)
    net.train()
    cache = feature_cache if feature_cache is not None else FeatureCache()
    train_features = load_features(train_df, net, model_config, cache)
    val_features = load_features(validation_df, net, model_config, cache)
    sampler = LengthGroupedSampler(
        train_features.lengths,
        config.batch_size,
        seed=config.seed,
        group_factor=50 if config.group_by_length else 1,
    )
    collate = DynamicPaddingCollator(int(net.tokenizer.pad_token_id or 0))

    # ---- optimizer, schedule, and the loop that steps them
    total_steps = steps_per_epoch(sampler, config) * config.epochs
    optimization = Optimization.build(net, config, total_steps, amp_dtype)
    loop = EpochLoop(net, train_features, sampler, collate, optimization, config, device, amp_dtype)

    # ---- checkpoints: resume from the newest one if there is one
    state = RunState()
    publisher = OncePerStepPublisher(on_metrics)
    expected_hash = config_hash(model_config, config)
    checkpoint_dir = checkpoints.directory
    checkpointer = checkpoints.open(
        metric_name=config.optimization_metric,
        architecture=architecture_of(net),
        config_hash=expected_hash,
        on_commit=publisher,
    )
    with checkpointer:  # closed (its last save flushed) even when resuming fails
        publisher.logged_up_to = checkpointer.last_committed_step()
        replay = on_metrics if replay_journal else None
        resumed_from = _resume_finished(
            checkpointer, net, state, config, expected_hash, checkpoint_dir, replay
        ) or _resume(checkpointer, loop, state, expected_hash, checkpoint_dir, replay)

        # ---- epochs: train, validate, commit, report; stop when asked
        reporter = EpochReporter(
            trial_label(checkpoint_dir),
            config.epochs,
            first_epoch=state.epoch,
            objective=config.optimization_metric,
        )
        stopped = stopped_mid_epoch = False
        samples, train_seconds = 0, 0.0
        epochs = progress(
            range(state.epoch, config.epochs),
            total=config.epochs,
            initial=state.epoch,
            desc="epochs",
            enabled=config.progress_bar,
        )
        try:
            for epoch in epochs:
                state.epoch = epoch
                started = time.perf_counter()
                totals = loop.run(state, stop_check)
                train_seconds += time.perf_counter() - started
                samples += totals.samples
                if totals.stopped:  # a partial epoch is never validated, committed or published
                    stopped = stopped_mid_epoch = True
                    logger.info(
                        "%s: stopped inside epoch %d at step %d; that epoch is dropped",
                        trial_label(checkpoint_dir), epoch, state.global_step,
                    )  # fmt: skip
                    break

                metrics = {"train_loss": totals.mean_loss, "lr": optimization.lr}
                metrics.update(validate(net, val_features, config, device))
                objective = metrics[config.optimization_metric]
                is_best = state.end_epoch(epoch, metrics, objective)
                last = epoch == config.epochs - 1
                checkpointer.save(
                    epoch=epoch,
                    step=state.global_step,
                    metrics=metrics,
                    weights=net.state_dict(),
                    # No resume follows the last epoch (``epochs`` is in the config hash), so its
                    # optimizer state, twice the weights with AdamW, would only be written, hashed
                    # and fsynced to be deleted when the trial ends.
                    training_state=None if last else state.training_state(sampler, optimization),
                    force=last,
                )
                reporter.epoch_end(epoch, metrics)
                epochs.set_postfix(loss=f"{metrics['train_loss']:.4f}", obj=f"{objective:.4f}")
                result = EpochResult(
                    epoch, state.global_step, metrics, objective, state.best, is_best
                )
                if on_epoch is not None and on_epoch(result):
                    stopped = True
                    break
        finally:
            epochs.close()

    return TrainResult(
        metrics=state.history[-1] if state.history else {},
        best_metric=state.best,
        best_epoch=state.best_epoch,
        seeds=seeds,
        last_logged_step=checkpointer.last_committed_step(),
        resumed_from=resumed_from,
        checkpoint_dir=checkpoint_dir,
        epochs_completed=state.epoch,
        stopped_early=stopped,
        history=state.history,
        train_samples_per_second=samples / train_seconds if train_seconds > 0 else 0.0,
        model=net,
        stopped_mid_epoch=stopped_mid_epoch,
        global_step=state.global_step,
    )


def _resume_finished(
    checkpoints: Checkpointer,
    net: DualAgentModel,
    state: RunState,
    config: TrainerConfig,
    expected_hash: str,
    directory: Path | Storage | None,
    replay: MetricsCallback | None,
) -> dict[str, int] | None:
    """A run killed after its last epoch was committed (before its caller learnt of it): the
    state comes from the journal and the weights from that epoch's checkpoint, which keeps no
    training state. None when the run had not ended, or that checkpoint is gone."""
    journal = checkpoints.history()
    if not journal or journal[-1].epoch != config.epochs - 1 or not journal[-1].checkpoint_id:
        return None
    last = journal[-1]
    try:
        loaded = checkpoints.load(str(last.checkpoint_id))
    except CheckpointError:  # pruned or corrupt: resume from the newest full one instead
        return None
    check_same_config(loaded, expected_hash, directory)
    logger.info(
        "%s: all %d epochs were committed; nothing left to train",
        trial_label(directory),
        config.epochs,
    )
    net.load_state_dict(loaded.weights)
    state.replay(journal, config.optimization_metric)
    if replay is not None:
        replay(journal)
    return {"epoch": last.epoch, "step": last.step}


def _resume(
    checkpoints: Checkpointer,
    loop: EpochLoop,
    state: RunState,
    expected_hash: str,
    directory: Path | Storage | None,
    replay: MetricsCallback | None,
) -> dict[str, int] | None:
    """Continue from the newest full checkpoint: weights, ``state``, sampler, optimization,
    RNGs and the journal's history; ``replay`` gets the journal of the epochs restored. Returns
    where the run resumed from (None for a fresh run)."""
    loaded = checkpoints.load_latest()
    if loaded is None or loaded.training_state is None:
        return None
    check_same_config(loaded, expected_hash, directory)
    loop.net.load_state_dict(loaded.weights)
    state.restore(loaded.training_state, loop.sampler, loop.optimization)
    journal = [r for r in checkpoints.history() if r.step <= state.global_step]
    state.history = [dict(r.metrics) for r in journal]
    logger.info(resume_message(trial_label(directory), state.epoch, loaded.path))
    if replay is not None and journal:
        replay(journal)
    return {"epoch": int(loaded.record.epoch), "step": int(loaded.record.step)}


__all__ = ["EpochResult", "StopCheck", "TrainResult", "train"]
