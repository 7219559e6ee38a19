"""What can be checked before the first trial is checked before it.

Why: a bad encoder id, an unknown metric or ``epochs: 0`` otherwise shows up only inside each
trial, so every trial fails in turn, the budget is spent, and the study ends with nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mental_health_hpo.hpo.objective import trial_configs
from mental_health_hpo.model.encoder import EncoderLoadError, load_encoder_for
from mental_health_hpo.training.config import check_optimization_metric
from mental_health_hpo.training.inference import available_metric_names


class StudyConfigError(ValueError):
    """The study's configuration cannot give a single trial: fix it before any trial runs."""


def validate_before_first_trial(base: Mapping[str, Any]) -> str:
    """Build the model and trainer configs, resolve the encoder's tokenizer, check the metric.

    Returns the optimization metric; raises :class:`StudyConfigError` naming the key to fix.
    """
    try:
        _, model_config, trainer_config = trial_configs(base, {})
    except ValueError as error:
        raise StudyConfigError(f"hpo.base: {error}") from error
    metric = trainer_config.optimization_metric
    try:
        check_optimization_metric(metric, available_metric_names())
    except ValueError as error:
        raise StudyConfigError(f"hpo.base.{error}") from error
    try:
        load_encoder_for(model_config, loader=_tokenizer_only, delays=(0.0,))
    except EncoderLoadError as error:
        raise StudyConfigError(f"hpo.base.model.encoder: {error}") from error
    return metric


def _tokenizer_only(source: str, **kwargs: Any) -> tuple[None, Any]:
    """The tokenizer is enough to prove the encoder resolves; the weights load per trial."""
    from transformers import AutoTokenizer

    return None, AutoTokenizer.from_pretrained(source, use_fast=True, **kwargs)
