"""A model's predictions and metrics: the validation pass of training and the evaluate path.

Training validates through :func:`validate`; a trained model's test metrics go through
:func:`predict` and :func:`evaluate`. Both reach :func:`predict_features`, so a report's numbers
are the numbers the trainer would have computed on the same frame.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import DataLoader

from mental_health_hpo.constants import CRITERIA
from mental_health_hpo.metrics import flatten_metrics, validation_metrics
from mental_health_hpo.model import DualAgentModel, ModelConfig, build_model, pos_weight_from_labels
from mental_health_hpo.training.batching import DynamicPaddingCollator, LengthGroupedSampler
from mental_health_hpo.training.config import TrainerConfig
from mental_health_hpo.training.devices import autocast, autocast_dtype, resolve_device, to_device
from mental_health_hpo.training.features import FeatureCache, WindowFeatures
from mental_health_hpo.training.progress import progress
from mental_health_hpo.training.windows import (
    DecodedWindows,
    decode_window_outputs,
    merge_window_predictions,
)

#: A state dict, or the path of a checkpoint's ``model.safetensors``.
Weights = Mapping[str, torch.Tensor] | str | Path


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


def model_for(
    model_config: ModelConfig, train_df: pd.DataFrame | None, model: DualAgentModel | None
) -> DualAgentModel:
    """``model`` when given (benchmarks), else a new one. With ``train_df`` a ``weighted_bce``
    loss without a configured ``pos_weight`` is weighted by its labels; without (inference) the
    weights, that buffer included, come from a checkpoint."""
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


def load_features(
    frame: pd.DataFrame, model: DualAgentModel, config: ModelConfig, cache: FeatureCache | None
) -> WindowFeatures:
    """The tokenized windows of ``frame`` for ``model``'s tokenizer, from ``cache`` when it has
    them (a study tokenizes each split once per tokenizer and window setting)."""
    return (cache or FeatureCache()).get_for_config(frame, model.tokenizer, config)


def load_weights(weights: Weights) -> Mapping[str, torch.Tensor]:
    """A state dict as given, or read from a ``model.safetensors`` file."""
    if isinstance(weights, str | Path):
        from safetensors.torch import load_file

        return load_file(str(weights))
    return weights


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
        batch = to_device(cpu_batch, device)
        with autocast(device, amp_dtype):
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


def predict(
    model_config: ModelConfig,
    weights: Weights,
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
    net = model_for(model_config, None, model)
    net.load_state_dict(dict(load_weights(weights)))
    net.to(target)
    features = load_features(frame, net, model_config, feature_cache)
    merged, _ = predict_features(
        net, features, batch_size=batch_size, device=target, threshold=threshold
    )
    return merged


def evaluate(
    model_config: ModelConfig,
    weights: Weights,
    frame: pd.DataFrame,
    *,
    prefix: str = "test_",
    threshold: float = 0.5,
    **kwargs: Any,
) -> dict[str, float]:
    """Flat criteria and evidence metrics of a trained model on ``frame`` (e.g. the test split)."""
    merged = predict(model_config, weights, frame, threshold=threshold, **kwargs)
    return flatten_metrics(validation_metrics(merged, threshold=threshold), prefix=prefix)


__all__ = [
    "Weights",
    "available_metric_names",
    "evaluate",
    "load_features",
    "load_weights",
    "model_for",
    "predict",
    "predict_features",
    "validate",
]
