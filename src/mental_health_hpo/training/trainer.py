"""Train one configuration; killed at any point, it resumes to the same weights and metrics.

Resume design (the simplest correct one): a checkpoint is committed at the end of every epoch,
holding weights, optimizer, scheduler, grad scaler, every RNG state and the data position
(next epoch, batch 0). The epoch's batch order is a pure function of (seed, epoch), and the RNG
state at an epoch's start is the one saved at the previous epoch's end, so after a kill anywhere
inside epoch e the run restarts from the checkpoint of epoch e - 1 and replays epoch e exactly:
the same batches, the same dropout masks, the same updates. Nothing mid-epoch needs saving, and
a run that was killed ends bit-identical (on CPU) to one that never stopped. The sampler's
position is still saved and honoured, so a checkpoint taken mid-epoch would resume correctly.

Metrics leave only through callbacks (no mlflow, no kedro here): ``on_metrics`` receives each
epoch's ``MetricRecord`` after the checkpoint core has committed it, so a published step is always
backed by a checkpoint and a resumed run starts logging after ``last_logged_step``.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import DataLoader

from mental_health_hpo.checkpointing import (
    Checkpointer,
    CheckpointOptions,
    RetentionPolicy,
    TrialLayout,
    architecture_signature,
    open_checkpoints,
)
from mental_health_hpo.checkpointing.errors import IncompatibleCheckpointError
from mental_health_hpo.checkpointing.manifest import MetricRecord
from mental_health_hpo.constants import CRITERIA
from mental_health_hpo.metrics import flatten_metrics, validation_metrics
from mental_health_hpo.model import DualAgentModel, ModelConfig, build_model, pos_weight_from_labels
from mental_health_hpo.training.batching import DynamicPaddingCollator, LengthGroupedSampler
from mental_health_hpo.training.config import TrainerConfig, check_optimization_metric
from mental_health_hpo.training.features import FeatureCache, WindowFeatures
from mental_health_hpo.training.optim import build_optimizer, build_scheduler
from mental_health_hpo.training.progress import EpochReporter, progress, resume_message
from mental_health_hpo.training.seeds import (
    SeedRecord,
    capture_rng_state,
    data_generator,
    restore_rng_state,
    seed_everything,
    worker_init_fn,
)
from mental_health_hpo.training.split_guard import TRAINING_GUARD
from mental_health_hpo.training.windows import (
    DecodedWindows,
    decode_window_outputs,
    merge_window_predictions,
)

logger = logging.getLogger(__name__)

#: Bump when the layout of ``training_state`` changes.
TRAINING_STATE_VERSION = 1


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
    """The outcome of :func:`train`."""

    metrics: dict[str, float]
    best_metric: float
    best_epoch: int
    seeds: SeedRecord
    last_logged_step: int | None
    resumed_from: dict[str, int] | None
    checkpoint_dir: Path | None
    epochs_completed: int
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)
    train_samples_per_second: float = 0.0
    model: DualAgentModel | None = field(default=None, repr=False, compare=False)


# --------------------------------------------------------------------------- helpers


def resolve_device(name: str | None) -> torch.device:
    """``None``: CUDA when available, else CPU."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(config: TrainerConfig, device: torch.device) -> torch.dtype | None:
    """bf16/fp16 autocast on CUDA only; CPU runs stay fp32 (reproducible, and not slower here)."""
    if device.type != "cuda" or config.mixed_precision == "no":
        return None
    return torch.bfloat16 if config.mixed_precision == "bf16" else torch.float16


def _autocast(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[Any]:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def available_metric_names() -> frozenset[str]:
    """Every metric an epoch reports, found by running the metric code on a dummy prediction."""
    merged = pd.DataFrame(
        {
            "post_id": ["p"] * len(CRITERIA),
            "criterion": list(CRITERIA),
            "label": [1, *([0] * (len(CRITERIA) - 1))],
            "alignment": ["exact", *(["none"] * (len(CRITERIA) - 1))],
            "gold_spans": [[[0, 1]], *([[]] * (len(CRITERIA) - 1))],
            "text": ["x"] * len(CRITERIA),
            "prob": [0.5] * len(CRITERIA),
            "pred_label": [1] * len(CRITERIA),
            "pred_start": [-1] * len(CRITERIA),
            "pred_end": [-1] * len(CRITERIA),
        }
    )
    names = set(flatten_metrics(validation_metrics(merged)))
    return frozenset(names | {"val_loss", "train_loss", "lr"})


def config_hash(model_config: ModelConfig, trainer_config: TrainerConfig) -> str:
    """SHA-256 of everything that must match for a checkpoint to be resumed."""
    resolved = {"model": model_config.public_dict(), "trainer": trainer_config.model_dump()}
    for volatile in ("progress_bar", "num_workers", "device"):
        resolved["trainer"].pop(volatile, None)
    canonical = json.dumps(resolved, sort_keys=True, default=str).encode()
    return hashlib.sha256(canonical).hexdigest()


def _load_features(
    frame: pd.DataFrame, model: DualAgentModel, config: ModelConfig, cache: FeatureCache | None
) -> WindowFeatures:
    return (cache or FeatureCache()).get_for_config(frame, model.tokenizer, config)


def _make_model(
    model_config: ModelConfig, train_df: pd.DataFrame | None, model: DualAgentModel | None
) -> DualAgentModel:
    if model is not None:
        return model
    pos_weight = None
    if (
        model_config.loss == "weighted_bce"
        and model_config.pos_weight is None
        and train_df is not None
    ):
        pos_weight = pos_weight_from_labels(
            train_df["label"].to_numpy(), CRITERIA, train_df["criterion"].to_numpy()
        )
    return build_model(model_config, pos_weight=pos_weight, for_inference=train_df is None)


def _loader(
    features: WindowFeatures,
    sampler: Any,
    collate: DynamicPaddingCollator,
    config: TrainerConfig,
    seed: int,
    device: torch.device,
) -> DataLoader[Any]:
    return DataLoader(
        features,  # type: ignore[arg-type]
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=config.num_workers,
        worker_init_fn=worker_init_fn if config.num_workers else None,
        generator=data_generator(seed),
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def predict_features(
    model: DualAgentModel,
    features: WindowFeatures,
    *,
    batch_size: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    max_batches: int | None = None,
    threshold: float = 0.5,
    progress_bar: bool | None = None,
) -> tuple[pd.DataFrame, float]:
    """Merged (post, criterion) predictions of ``features`` and the mean loss over windows."""
    was_training = model.training
    model.eval()
    sampler = LengthGroupedSampler(features.lengths, batch_size, shuffle=False)
    collate = DynamicPaddingCollator(int(model.tokenizer.pad_token_id or 0))
    loader: DataLoader[Any] = DataLoader(
        features,  # type: ignore[arg-type]
        batch_sampler=sampler,
        collate_fn=collate,
    )
    total = len(sampler) if max_batches is None else min(len(sampler), max_batches)
    parts, loss_sum, windows = [], 0.0, 0
    bar = progress(
        itertools.islice(loader, total), total=total, desc="eval", enabled=progress_bar, position=1
    )
    for cpu_batch in bar:
        batch = _to_device(cpu_batch, device)
        with _autocast(device, amp_dtype):
            outputs = model(batch)
            loss = model.compute_loss(outputs, batch)["loss"]
        size = int(batch["input_ids"].shape[0])
        loss_sum += float(loss) * size
        windows += size
        parts.append(decode_window_outputs(outputs, batch, model.config.max_answer_tokens))
    bar.close()
    model.train(was_training)
    merged = merge_window_predictions(features, DecodedWindows.concat(parts), threshold=threshold)
    return merged, loss_sum / max(1, windows)


def validate(
    model: DualAgentModel,
    features: WindowFeatures,
    config: TrainerConfig,
    device: torch.device,
    prefix: str = "val_",
) -> dict[str, float]:
    """Criteria and evidence metrics of one pass over ``features``, flat and prefixed."""
    merged, loss = predict_features(
        model,
        features,
        batch_size=config.eval_batch_size,
        device=device,
        amp_dtype=autocast_dtype(config, device),
        max_batches=config.max_eval_batches,
        progress_bar=config.progress_bar,
    )
    metrics = flatten_metrics(validation_metrics(merged), prefix=prefix)
    metrics[f"{prefix}loss"] = loss
    return metrics


def _weights_from(weights: Mapping[str, torch.Tensor] | str | Path) -> Mapping[str, torch.Tensor]:
    if isinstance(weights, str | Path):
        from safetensors.torch import load_file

        return load_file(str(weights))
    return weights


def predict(
    model_config: ModelConfig,
    weights: Mapping[str, torch.Tensor] | str | Path,
    frame: pd.DataFrame,
    *,
    batch_size: int = 32,
    device: str | None = None,
    threshold: float = 0.5,
    feature_cache: FeatureCache | None = None,
    model: DualAgentModel | None = None,
) -> pd.DataFrame:
    """Merged predictions of a trained model on ``frame``; the evaluate path (may read test).

    ``weights``: a state dict or a ``model.safetensors`` path (a checkpoint's weights file).
    """
    target = resolve_device(device)
    net = _make_model(model_config, None, model)
    net.load_state_dict(dict(_weights_from(weights)))
    net.to(target)
    features = _load_features(frame, net, model_config, feature_cache)
    merged, _ = predict_features(
        net, features, batch_size=batch_size, device=target, threshold=threshold
    )
    return merged


def evaluate(
    model_config: ModelConfig,
    weights: Mapping[str, torch.Tensor] | str | Path,
    frame: pd.DataFrame,
    *,
    prefix: str = "test_",
    threshold: float = 0.5,
    **kwargs: Any,
) -> dict[str, float]:
    """Flat criteria and evidence metrics of a trained model on ``frame`` (e.g. the test split)."""
    merged = predict(model_config, weights, frame, threshold=threshold, **kwargs)
    return flatten_metrics(validation_metrics(merged, threshold=threshold), prefix=prefix)


# --------------------------------------------------------------------------- training


@dataclass
class _Run:
    """Mutable state of one run: what a checkpoint must hold to continue it."""

    epoch: int = 0  # next epoch to run
    position: int = 0  # batches of ``epoch`` already done
    global_step: int = 0  # optimizer steps so far
    best: float = -math.inf
    best_epoch: int = -1
    history: list[dict[str, float]] = field(default_factory=list)


def _training_state(
    run: _Run,
    sampler: LengthGroupedSampler,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
) -> dict[str, Any]:
    """Everything but the weights, as weights_only-safe structures."""
    return {
        "version": TRAINING_STATE_VERSION,
        "epoch": run.epoch,
        "position": run.position,
        "global_step": run.global_step,
        "best": run.best,
        "best_epoch": run.best_epoch,
        "sampler": {"seed": sampler.seed, "epoch": run.epoch, "position": run.position},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "rng": capture_rng_state(),
    }


def _restore(
    state: Mapping[str, Any],
    run: _Run,
    sampler: LengthGroupedSampler,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
) -> None:
    if int(state.get("version", -1)) != TRAINING_STATE_VERSION:
        raise ValueError(f"training_state version {state.get('version')} is not supported")
    run.epoch = int(state["epoch"])
    run.position = int(state["position"])
    run.global_step = int(state["global_step"])
    run.best = float(state["best"])
    run.best_epoch = int(state["best_epoch"])
    sampler.load_state_dict(dict(state["sampler"]))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    restore_rng_state(state["rng"])


def _batches_per_epoch(sampler: LengthGroupedSampler, config: TrainerConfig) -> int:
    full = len(sampler)
    if config.max_steps_per_epoch is None:
        return full
    return min(full, config.max_steps_per_epoch * config.grad_accum_steps)


def _epoch_batches(
    loader: DataLoader[Any], start: int, stop: int
) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """(batch index, batch) from ``start`` (the sampler already skips done batches) to ``stop``.

    ``islice`` stops before fetching batch ``stop``: a capped epoch collates nothing extra.
    """
    return enumerate(itertools.islice(loader, max(0, stop - start)), start=start)


class _Publisher:
    """Forwards committed records to ``on_metrics``, never a step at or below ``logged_up_to``.

    A resume replays the epochs after the last full checkpoint; when retention journaled some of
    them without a checkpoint (``min_interval_epochs`` > 1) their steps were already published.
    """

    def __init__(self, on_metrics: Callable[[list[Any]], None] | None) -> None:
        self.on_metrics = on_metrics
        self.logged_up_to: int | None = None

    def __call__(self, record: Any) -> None:
        if self.on_metrics is None:
            return
        if self.logged_up_to is not None and record.step <= self.logged_up_to:
            return
        self.on_metrics([record])


def _trial_label(checkpoint_dir: str | Path | None) -> str:
    """``trial_0002`` for a study's trial, the folder name otherwise, ``run`` without one."""
    if checkpoint_dir is None:
        return "run"
    return TrialLayout(Path(checkpoint_dir).parent).trial_id


def _check_same_config(record: Any, expected: str, directory: Any) -> None:
    """Refuse to resume a checkpoint written by another configuration (the manager only records
    the hash): mixing two configurations' optimizer states and schedules is never intended."""

    found = str(getattr(record, "config_hash", "") or "")
    if found and found != expected:
        raise IncompatibleCheckpointError(
            f"{directory}: checkpoint {record.id} was written by another configuration "
            f"(config hash {found[:12]}, this run {expected[:12]}); use a fresh checkpoint_dir "
            "or the original model and trainer configs"
        )


def _record(epoch: int, step: int, metrics: dict[str, float]) -> Any:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    return MetricRecord(epoch=epoch, step=step, metrics=dict(metrics), timestamp=stamp)


def train(
    model_config: ModelConfig,
    trainer_config: TrainerConfig,
    train_df: pd.DataFrame,
    validation_df: pd.DataFrame,
    *,
    checkpoint_dir: str | Path | None = None,
    retention: RetentionPolicy | None = None,
    checkpoint_options: Mapping[str, Any] | None = None,
    on_epoch: Callable[[EpochResult], bool | None] | None = None,
    on_metrics: Callable[[list[Any]], None] | None = None,
    replay_journal: bool = False,
    feature_cache: FeatureCache | None = None,
    model: DualAgentModel | None = None,
) -> TrainResult:
    """Train ``model_config`` with ``trainer_config``; resume from ``checkpoint_dir`` if it has one.

    ``retention``: a ``RetentionPolicy`` (default: the checkpoint core's). ``checkpoint_options``
    are the ``hpo.checkpointing`` parameters (``mode``, ``writer``, ...). ``on_epoch``
    returning True stops after that epoch's checkpoint (Optuna pruning). ``on_metrics`` gets the
    committed ``MetricRecord``s (from the checkpoint writer's thread when saving asynchronously);
    with ``replay_journal`` a resumed run first replays the journal of earlier epochs (same
    timestamps, so an idempotent publisher can repair a publish lost in the crash).
    ``model``: an already built model to train in place (benchmarks; skips encoder loading).
    """
    config = trainer_config
    TRAINING_GUARD.check_frames([("train_df", train_df), ("validation_df", validation_df)])
    check_optimization_metric(config.optimization_metric, available_metric_names())
    seeds = seed_everything(config.seed, config.deterministic)
    device = resolve_device(config.device)
    amp_dtype = autocast_dtype(config, device)

    net = _make_model(model_config, train_df, model).to(device)
    net.train()
    cache = feature_cache if feature_cache is not None else FeatureCache()
    train_features = _load_features(train_df, net, model_config, cache)
    val_features = _load_features(validation_df, net, model_config, cache)
    collate = DynamicPaddingCollator(int(net.tokenizer.pad_token_id or 0))
    sampler = LengthGroupedSampler(
        train_features.lengths,
        config.batch_size,
        seed=config.seed,
        group_factor=50 if config.group_by_length else 1,
    )
    n_batches = _batches_per_epoch(sampler, config)
    steps_per_epoch = math.ceil(n_batches / config.grad_accum_steps)
    optimizer = build_optimizer(
        net,
        name=config.optimizer,
        lr=config.lr,
        head_lr=config.head_lr,
        weight_decay=config.weight_decay,
        layerwise_lr_decay=config.layerwise_lr_decay,
        eps=config.adam_eps,
    )
    scheduler = build_scheduler(
        optimizer, total_steps=steps_per_epoch * config.epochs, warmup_ratio=config.warmup_ratio
    )
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    run = _Run()
    publisher = _Publisher(on_metrics)
    manager = _checkpoint_manager(
        checkpoint_dir, retention, checkpoint_options, net, model_config, config, publisher
    )
    resumed_from: dict[str, int] | None = None
    if manager is not None:
        publisher.logged_up_to = manager.last_committed_step()
        loaded = manager.load_latest()
        if loaded is not None and loaded.training_state is not None:
            _check_same_config(loaded.record, config_hash(model_config, config), checkpoint_dir)
            net.load_state_dict(loaded.weights)
            _restore(loaded.training_state, run, sampler, optimizer, scheduler, scaler)
            journal = [r for r in manager.history() if r.step <= run.global_step]
            run.history = [dict(r.metrics) for r in journal]
            resumed_from = {"epoch": int(loaded.record.epoch), "step": int(loaded.record.step)}
            logger.info(resume_message(_trial_label(checkpoint_dir), run.epoch, loaded.path))
            if replay_journal and on_metrics is not None and journal:
                on_metrics(journal)

    reporter = EpochReporter(_trial_label(checkpoint_dir), config.epochs, first_epoch=run.epoch)
    stopped = False
    samples, train_seconds = 0, 0.0
    epochs = progress(
        range(run.epoch, config.epochs),
        total=config.epochs,
        initial=run.epoch,
        desc="epochs",
        enabled=config.progress_bar,
    )
    try:
        for epoch in epochs:
            if run.position == 0:
                sampler.set_epoch(epoch)
            run.epoch = epoch
            started = time.perf_counter()
            loss_sum, batches_seen, epoch_samples = _train_epoch(
                net, sampler, train_features, collate, config, device, amp_dtype,
                optimizer, scheduler, scaler, run, n_batches,
            )  # fmt: skip
            train_seconds += time.perf_counter() - started
            samples += epoch_samples

            metrics = {"train_loss": loss_sum / max(1, batches_seen)}
            metrics["lr"] = float(scheduler.get_last_lr()[0])
            metrics.update(validate(net, val_features, config, device))
            objective = metrics[config.optimization_metric]
            is_best = objective > run.best
            if is_best:
                run.best, run.best_epoch = objective, epoch
            run.history.append(metrics)
            run.epoch, run.position = epoch + 1, 0
            if manager is not None:
                manager.save(
                    epoch=epoch,
                    step=run.global_step,
                    metrics=metrics,
                    weights=net.state_dict(),
                    training_state=_training_state(run, sampler, optimizer, scheduler, scaler),
                    force=epoch == config.epochs - 1,
                )
            else:
                publisher(_record(epoch, run.global_step, metrics))
            reporter.epoch_end(epoch, metrics)
            result = EpochResult(epoch, run.global_step, metrics, objective, run.best, is_best)
            epochs.set_postfix(loss=f"{metrics['train_loss']:.4f}", obj=f"{objective:.4f}")
            if on_epoch is not None and on_epoch(result):
                stopped = True
                break
    finally:
        epochs.close()
        if manager is not None:
            manager.close()

    return TrainResult(
        metrics=run.history[-1] if run.history else {},
        best_metric=run.best,
        best_epoch=run.best_epoch,
        seeds=seeds,
        last_logged_step=manager.last_committed_step() if manager is not None else None,
        resumed_from=resumed_from,
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir is not None else None,
        epochs_completed=run.epoch,
        stopped_early=stopped,
        history=run.history,
        train_samples_per_second=samples / train_seconds if train_seconds > 0 else 0.0,
        model=net,
    )


def _train_epoch(
    net: DualAgentModel,
    sampler: LengthGroupedSampler,
    features: WindowFeatures,
    collate: DynamicPaddingCollator,
    config: TrainerConfig,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
    run: _Run,
    n_batches: int,
) -> tuple[float, int, int]:
    """One epoch from ``run.position``; returns (loss sum, batches, samples) of this call."""
    accum = config.grad_accum_steps
    loader = _loader(features, sampler, collate, config, config.seed + run.epoch, device)
    bar = progress(
        _epoch_batches(loader, run.position, n_batches),
        total=n_batches,
        initial=run.position,
        desc=f"epoch {run.epoch}",
        enabled=config.progress_bar,
        position=1,
    )
    loss_sum = torch.zeros((), device=device)
    batches = samples = 0
    for index, cpu_batch in bar:
        batch = _to_device(cpu_batch, device)
        group_start = index - index % accum
        group_size = min(accum, n_batches - group_start)
        with _autocast(device, amp_dtype):
            loss = net.compute_loss(net(batch), batch)["loss"]
        scaled = loss / group_size
        (scaler.scale(scaled) if scaler is not None else scaled).backward()
        loss_sum += loss.detach().float()
        batches += 1
        samples += int(batch["input_ids"].shape[0])
        run.position = index + 1
        if index + 1 == group_start + group_size:
            _optimizer_step(net, optimizer, scheduler, scaler, config.max_grad_norm)
            run.global_step += 1
    bar.close()
    return float(loss_sum), batches, samples


def _optimizer_step(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
    max_grad_norm: float | None,
) -> None:
    if scaler is not None:
        scaler.unscale_(optimizer)
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(net.parameters(), max_grad_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def _checkpoint_manager(
    directory: str | Path | None,
    retention: RetentionPolicy | None,
    options: Mapping[str, Any] | None,
    net: DualAgentModel,
    model_config: ModelConfig,
    config: TrainerConfig,
    on_commit: Callable[[Any], None],
) -> Checkpointer | None:
    """The checkpoint core for this run, or None without a directory.

    ``options`` are the ``hpo.checkpointing`` parameters (``mode`` or ``enabled``/``dry_run``,
    ``writer`` or ``async_save``).
    """
    if directory is None:
        return None
    heads = {k: str(v) for k, v in net.head_types().items()}
    checkpoint_options = CheckpointOptions.from_params(
        dict(options or {}),
        retention if retention is not None else RetentionPolicy(),
        config.optimization_metric,
        architecture=architecture_signature(net, heads),
        config_hash=config_hash(model_config, config),
    )
    return open_checkpoints(Path(directory), checkpoint_options, on_commit=on_commit)


__all__ = [
    "EpochResult",
    "TrainResult",
    "available_metric_names",
    "config_hash",
    "evaluate",
    "predict",
    "predict_features",
    "train",
    "validate",
]
