"""Model: encoder loading, pooling, criteria and evidence heads, coupling, losses, ``ModelConfig``.

Framework-free (no kedro, no mlflow).
"""

from mental_health_hpo.model.config import PACKAGED_MINILM, ModelConfig
from mental_health_hpo.model.dual_agent import DualAgentModel, MultiTaskModel, build_model
from mental_health_hpo.model.encoder import (
    EncoderLoadError,
    LoadedEncoder,
    load_encoder,
    load_encoder_for,
    load_tokenizer,
)
from mental_health_hpo.model.losses import IGNORE_INDEX, pos_weight_from_labels
from mental_health_hpo.model.registry import config_for_encoder, encoder_id, encoder_names

__all__ = [
    "IGNORE_INDEX",
    "PACKAGED_MINILM",
    "DualAgentModel",
    "EncoderLoadError",
    "LoadedEncoder",
    "ModelConfig",
    "MultiTaskModel",
    "build_model",
    "config_for_encoder",
    "encoder_id",
    "encoder_names",
    "load_encoder",
    "load_encoder_for",
    "load_tokenizer",
    "pos_weight_from_labels",
]
