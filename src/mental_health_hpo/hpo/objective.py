"""The Optuna objective: one trial = one resumable training run in the trial's folder.

Framework-free: tracking reaches it through the small :class:`TrialPublisher` protocol, so this
module never imports kedro or mlflow.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import pandas as pd
import torch

from mental_health_hpo.checkpointing import CheckpointSettings, RunCheckpoints
from mental_health_hpo.crash_points import crash_point
from mental_health_hpo.hpo.runner import TrialContext, TrialStopped
from mental_health_hpo.hpo.search_space import merge
from mental_health_hpo.model import ModelConfig
from mental_health_hpo.ops import mask_obj, set_context
from mental_health_hpo.training import FeatureCache, StopCheck
from mental_health_hpo.training.config import TrainerConfig
from mental_health_hpo.training.trainer import EpochResult, TrainResult, train

logger = logging.getLogger(__name__)


class TrialPublisher(Protocol):
    """What the objective needs from a tracker (MLflow in the Kedro shell)."""

    def start(
        self,
        existing_run_id: str | None,
        run_name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str],
    ) -> str | None: ...

    def publish(self, run_id: str | None, records: Any) -> bool: ...

    def set_tags(self, run_id: str | None, tags: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class _Record:
    step: int
    metrics: dict[str, float]
    timestamp_ms: int


def with_epoch_series(records: Any) -> list[Any]:
    """Each committed epoch as logged (indexed by global step), plus its validation metrics
    as ``epoch.<name>`` indexed by epoch: step curves stay comparable across batch sizes,
    epoch curves read as the study's pruner saw them. Same timestamps on every replay, so
    MLflow keeps one point per (key, step)."""
    out: list[Any] = []
    for record in records:
        out.append(record)
        by_epoch = {f"epoch.{k}": v for k, v in record.metrics.items() if k.startswith("val_")}
        if by_epoch and hasattr(record, "epoch"):
            out.append(_Record(int(record.epoch), by_epoch, int(record.timestamp_ms)))
    return out


def trial_configs(
    base: Mapping[str, Any], sampled: Mapping[str, Any]
) -> tuple[dict[str, Any], ModelConfig, TrainerConfig]:
    """The trial's full configuration and its validated model and trainer configs.

    ``trainer.torch_threads`` is a process setting, not part of what is trained: it is taken
    out before the trainer config is built (and never enters the checkpoint's config hash).
    """
    config = merge(base, sampled)
    model_config = ModelConfig.from_params(config.get("model", {}))
    trainer = {k: v for k, v in config.get("trainer", {}).items() if k != "torch_threads"}
    trainer_config = TrainerConfig.from_params(trainer)
    return config, model_config, trainer_config


def torch_threads_of(config: Mapping[str, Any], study_default: int | None) -> int | None:
    """``trainer.torch_threads`` of the trial, else the study's (cores / workers on the host)."""
    value = config.get("trainer", {}).get("torch_threads")
    if value is None:
        return study_default
    if int(value) < 1:
        raise ValueError(f"hpo.base.trainer.torch_threads must be >= 1, got {value}")
    return int(value)


@dataclass
class TrainingObjective:
    """Trains one sampled configuration; returns its best validation score.

    The training data never includes the test split: the trainer's guard raises if it does.
    """

    train_df: pd.DataFrame
    validation_df: pd.DataFrame
    base: dict[str, Any]
    checkpointing: CheckpointSettings = field(default_factory=CheckpointSettings)
    publisher: TrialPublisher | None = None
    tags: dict[str, str] = field(default_factory=dict)
    feature_cache: FeatureCache = field(default_factory=FeatureCache)

    def __call__(self, context: TrialContext) -> float:
        config, model_config, trainer_config = trial_configs(self.base, context.sampled)
        threads = torch_threads_of(config, context.torch_threads)
        if threads is not None and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)  # workers sharing a host must not oversubscribe it
        folder = context.folder
        run_name = f"{context.study_name}.{folder.trial_id}" if context.study_name else None
        public = {"model": model_config.public_dict(), "trainer": trainer_config.model_dump()}
        tags = {**self.tags, "trial_number": str(context.trial.number), "state": "running"}
        run_id = None
        crash_point("before_trial_run")
        if self.publisher is not None:
            run_id = self.publisher.start(
                folder.read().get("mlflow_run_id"), run_name or folder.trial_id, public, tags
            )
        # An unreachable tracker must not erase the run a resumed trial already has.
        folder.update(
            mlflow_run_id=run_id or folder.read().get("mlflow_run_id"), config=mask_obj(public)
        )
        folder.note_work("started", resumed=context.resumed)
        stop: list[str] = []

        def on_epoch(result: EpochResult) -> bool:
            set_context(epoch=result.epoch, step=result.step)
            folder.note_work("epoch", epoch=result.epoch, step=result.step)
            reason = context.should_stop(result.objective, result.epoch)
            if reason:
                stop.append(reason)
            return bool(reason)

        def on_metrics(records: list[Any]) -> None:
            if self.publisher is not None:
                self.publisher.publish(run_id, with_epoch_series(records))

        result = train(
            model_config,
            trainer_config,
            self.train_df,
            self.validation_df,
            checkpoints=RunCheckpoints(
                folder.checkpoints, self.checkpointing, still_owner=context.holds_lease
            ),
            on_epoch=on_epoch,
            on_metrics=on_metrics,
            replay_journal=context.resumed,
            feature_cache=self.feature_cache,
            stop_check=_deadline_check(context),
        )
        seeds = {f"seed.{k}": v for k, v in asdict(result.seeds).items()}
        has_value = result.epochs_completed > 0
        folder.update(
            seeds=seeds,
            best_epoch=result.best_epoch,
            best_value=result.best_metric if has_value else None,
            last_logged_step=result.last_logged_step,
            resumed_from=result.resumed_from,
        )
        if self.publisher is not None:
            self.publisher.set_tags(run_id, seeds)
        if result.stopped_mid_epoch:
            stop.append(_timed_out_mid_epoch(result))
        if stop:
            raise TrialStopped(stop[0], result.best_metric if has_value else None)
        return float(result.best_metric)


def _deadline_check(context: TrialContext) -> StopCheck | None:
    """The trial's deadline, checked inside epochs too (None without a timeout)."""
    if context.deadline is None:
        return None
    return StopCheck(context.out_of_time, every_steps=context.check_every_steps)


def _timed_out_mid_epoch(result: TrainResult) -> str:
    """The end reason of a trial whose deadline passed inside an epoch (that epoch is dropped)."""
    where = f"in epoch {result.epochs_completed} at step {result.global_step}"
    if result.epochs_completed == 0:
        return (
            f"timed out {where}, before its first epoch ended: no value "
            "(raise hpo.study.trial_timeout_s)"
        )
    return f"timed out {where}; best of {result.epochs_completed} full epoch(s) kept"
