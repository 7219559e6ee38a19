"""ModelConfig: defaults, secrets, and broken configs that name their field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mental_health_hpo.model import PACKAGED_MINILM, ModelConfig, config_for_encoder, encoder_id
from mental_health_hpo.model.registry import encoder_names


def test_defaults_use_the_packaged_minilm() -> None:
    config = ModelConfig()
    assert config.encoder == PACKAGED_MINILM
    assert config.num_labels == 1
    assert ModelConfig(input_format="multi_label").num_labels == 9


def test_token_is_masked_everywhere_but_get_secret_value() -> None:
    config = ModelConfig.from_params({"hf_token": "hf_supersecret"})
    assert "supersecret" not in repr(config)
    assert "supersecret" not in str(config)
    assert "hf_token" not in config.public_dict()
    assert config.hf_token is not None
    assert config.hf_token.get_secret_value() == "hf_supersecret"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"coupling": "coupled"}, "coupling_method"),
        ({"coupling_method": "concat"}, "coupling_method"),
        ({"loss": "focal"}, "focal_gamma"),
        ({"loss": "adaptive_focal"}, "focal_gamma"),
        ({"loss": "hybrid", "focal_gamma": 2.0}, "hybrid_alpha"),
        ({"pooling": "max"}, "pooling"),
        ({"criteria_head": "transformer"}, "criteria_head"),
        ({"span_head": "crf"}, "span_head"),
        ({"activation": "swish"}, "activation"),
        ({"input_format": "triples"}, "input_format"),
        ({"dropout": 1.5}, "dropout"),
        ({"max_length": 8}, "max_length"),
        ({"max_length": 64, "stride": 40}, "stride"),
        ({"pos_weight": [1.0, 2.0]}, "pos_weight"),
        ({"pos_weight": -1.0}, "pos_weight"),
        ({"label_smoothing": 0.7}, "label_smoothing"),
        ({"criteria_loss_weight": 0.0, "evidence_loss_weight": 0.0}, "criteria_loss_weight"),
        ({"no_such_option": 1}, "no_such_option"),
    ],
)
def test_broken_config_names_its_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        ModelConfig.from_params(params)


def test_config_is_frozen_and_hashable_into_a_dict() -> None:
    config = ModelConfig(coupling="coupled", coupling_method="weighted_mean")
    with pytest.raises(ValidationError):
        config.dropout = 0.5  # type: ignore[misc]
    assert ModelConfig.from_params(config.public_dict()) == config


def test_registry_ships_the_issue_encoders() -> None:
    assert set(encoder_names()) >= {
        "minilm",
        "mental-bert",
        "psychbert",
        "clinicalbert",
        "bert-base",
        "roberta-base",
    }
    assert encoder_id("mental-bert") == "mental/mental-bert-base-uncased"
    assert encoder_id("psychbert") == "mnaylor/psychbert-cased"
    assert encoder_id("clinicalbert") == "emilyalsentzer/Bio_ClinicalBERT"
    assert encoder_id("minilm") == PACKAGED_MINILM
    assert config_for_encoder("roberta-base", max_length=128).encoder == "roberta-base"
    with pytest.raises(KeyError, match="encoder"):
        encoder_id("gpt-5")
