"""Every head, pooling, coupling, loss and input format runs forward and backward on a tiny BERT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from mental_health_hpo.constants import CRITERIA
from mental_health_hpo.model import (
    IGNORE_INDEX,
    DualAgentModel,
    LoadedEncoder,
    ModelConfig,
    build_model,
    load_encoder,
)
from mental_health_hpo.model.config import (
    ACTIVATIONS,
    COUPLING_METHODS,
    CRITERIA_HEADS,
    LOSSES,
    POOLINGS,
    SPAN_HEADS,
)
from mental_health_hpo.training.batching import DynamicPaddingCollator
from mental_health_hpo.training.features import build_features

MAX_LENGTH, STRIDE = 48, 8


def model_input(posts: dict[str, tuple[str, dict[str, str]]]) -> pd.DataFrame:
    """Rows of the data contract: post id -> (text, {criterion: evidence sentence in text})."""
    rows = []
    for post_id, (text, evidence) in posts.items():
        for criterion in CRITERIA:
            sentence = evidence.get(criterion)
            start = text.index(sentence) if sentence else -1
            end = start + len(sentence) if sentence else -1
            rows.append(
                {
                    "post_id": post_id,
                    "text": text,
                    "criterion": criterion,
                    "label": int(sentence is not None),
                    "evidence_start": start,
                    "evidence_end": end,
                    "evidence_spans": [[start, end]] if sentence else [],
                    "alignment": "exact" if sentence else "none",
                }
            )
    return pd.DataFrame(rows)


TABLE = model_input(
    {
        "p1": (
            "I sleep all day. Work was busy. I feel empty and sad every single day.",
            {"SLEEP_ISSUES": "I sleep all day.", "DEPRESSED_MOOD": "I feel empty and sad"},
        ),
        "p2": ("Nothing is fun anymore. The bus was late.", {"ANHEDONIA": "Nothing is fun"}),
    }
)


@pytest.fixture(scope="module")
def encoder(tiny_model_dir: Path) -> LoadedEncoder:
    return load_encoder(str(tiny_model_dir))


@pytest.fixture(scope="module")
def batches(encoder: LoadedEncoder) -> dict[str, dict[str, torch.Tensor]]:
    collate = DynamicPaddingCollator(encoder.tokenizer.pad_token_id)
    out = {}
    for input_format in ("binary_pairs", "multi_label"):
        features = build_features(
            TABLE,
            encoder.tokenizer,
            input_format=input_format,  # type: ignore[arg-type]
            max_length=MAX_LENGTH,
            stride=STRIDE,
        )
        positives = [i for i in range(len(features)) if features.start_positions[i].max() > 0]
        chosen = sorted({*positives[:2], 0, len(features) - 1})
        out[input_format] = collate([features[i] for i in chosen])
    return out


def run_step(
    encoder: LoadedEncoder, batch: dict[str, torch.Tensor], **params: Any
) -> tuple[DualAgentModel, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    params.setdefault("max_length", MAX_LENGTH)
    params.setdefault("stride", STRIDE)
    config = ModelConfig(encoder="unused-because-preloaded", **params)
    encoder.model.zero_grad(set_to_none=True)  # shared across tests: only the heads are new
    model = build_model(config, encoder=encoder)
    outputs = model(batch)
    losses = model.compute_loss(outputs, batch)
    losses["loss"].backward()
    for name, value in losses.items():
        assert torch.isfinite(value), name
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads, "no gradient reached the parameters"
    assert any(p.grad is not None for p in model.encoder.parameters()), "encoder not trained"
    return model, outputs, losses


def covering(*choices: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Cycle shorter option lists so every value of every list appears at least once."""
    longest = max(len(c) for c in choices)
    return [tuple(c[i % len(c)] for c in choices) for i in range(longest)]


HEAD_POOLING_ACTIVATION = covering(CRITERIA_HEADS, POOLINGS, ACTIVATIONS)
assert {h for h, _, _ in HEAD_POOLING_ACTIVATION} == set(CRITERIA_HEADS)
assert {p for _, p, _ in HEAD_POOLING_ACTIVATION} == set(POOLINGS)


@pytest.mark.parametrize(("head", "pooling", "activation"), HEAD_POOLING_ACTIVATION)
def test_every_criteria_head_pooling_and_activation(
    encoder: LoadedEncoder, batches: dict[str, Any], head: str, pooling: str, activation: str
) -> None:
    batch = batches["binary_pairs"]
    _, outputs, _ = run_step(
        encoder, batch, criteria_head=head, pooling=pooling, activation=activation
    )
    assert outputs["criteria_logits"].shape == (batch["input_ids"].shape[0], 1)


@pytest.mark.parametrize("input_format", ["binary_pairs", "multi_label"])
@pytest.mark.parametrize("span_head", SPAN_HEADS)
def test_every_span_head_and_input_format(
    encoder: LoadedEncoder, batches: dict[str, Any], span_head: str, input_format: str
) -> None:
    batch = batches[input_format]
    size, length = batch["input_ids"].shape
    labels = 1 if input_format == "binary_pairs" else len(CRITERIA)
    _, outputs, losses = run_step(encoder, batch, span_head=span_head, input_format=input_format)
    assert outputs["criteria_logits"].shape == (size, labels)
    sentences = int(batch["sentence_ids"].max()) + 1
    if span_head == "sentence_evidence":
        assert outputs["sentence_evidence_logits"].shape == (size, labels, sentences)
        assert losses["evidence_loss"] > 0
        return
    assert outputs["start_logits"].shape == (size, labels, length)
    assert outputs["end_logits"].shape == (size, labels, length)
    if span_head == "biaffine":
        assert outputs["span_logits"].shape == (size, labels, length, length)
    if span_head == "sentence_reranker":
        assert outputs["sentence_logits"].shape == (size, labels, 1 + sentences)
    assert losses["evidence_loss"] > 0


@pytest.mark.parametrize(
    ("method", "span_head"),
    covering(
        COUPLING_METHODS, ("sentence_evidence", "start_end_mlp", "biaffine", "sentence_reranker")
    ),
)
def test_every_coupling_method(
    encoder: LoadedEncoder, batches: dict[str, Any], method: str, span_head: str
) -> None:
    model, _, _ = run_step(
        encoder,
        batches["multi_label"],
        input_format="multi_label",
        coupling="coupled",
        coupling_method=method,
        span_head=span_head,
        criteria_head="gated",
    )
    # The criteria loss reaches the evidence head through the coupling.
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.span_head.parameters())


LOSS_PARAMS: dict[str, dict[str, Any]] = {
    "bce": {},
    "weighted_bce": {"pos_weight": 3.0},
    "focal": {"focal_gamma": 2.0},
    "adaptive_focal": {"focal_gamma": 1.0},
    "hybrid": {"focal_gamma": 2.0, "hybrid_alpha": 0.3},
}


@pytest.mark.parametrize("input_format", ["binary_pairs", "multi_label"])
@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss(
    encoder: LoadedEncoder, batches: dict[str, Any], loss: str, input_format: str
) -> None:
    run_step(
        encoder,
        batches[input_format],
        input_format=input_format,
        loss=loss,
        label_smoothing=0.1,
        criteria_loss_weight=2.0,
        evidence_loss_weight=0.5,
        **LOSS_PARAMS[loss],
    )


def test_task_weights_combine_the_losses(encoder: LoadedEncoder, batches: dict[str, Any]) -> None:
    torch.manual_seed(0)
    _, _, losses = run_step(
        encoder,
        batches["binary_pairs"],
        criteria_loss_weight=2.0,
        evidence_loss_weight=0.5,
        dropout=0.0,
    )
    expected = 2.0 * losses["criteria_loss"] + 0.5 * losses["evidence_loss"]
    assert torch.allclose(losses["loss"], expected)


def test_per_criterion_pos_weight_follows_the_pair_criterion(
    encoder: LoadedEncoder, batches: dict[str, Any]
) -> None:
    weights = [float(i + 1) for i in range(len(CRITERIA))]
    model, _, _ = run_step(
        encoder, batches["binary_pairs"], loss="weighted_bce", pos_weight=weights
    )
    batch = batches["binary_pairs"]
    picked = model._element_pos_weight(batch)
    assert picked.shape == batch["labels"].shape
    assert torch.equal(picked, batch["criterion_ids"].float() + 1)


def test_weighted_bce_without_weights_is_rejected_with_the_field(encoder: LoadedEncoder) -> None:
    config = ModelConfig(encoder="x", loss="weighted_bce")
    with pytest.raises(ValueError, match="pos_weight"):
        build_model(config, encoder=encoder)


def test_unaligned_positives_are_ignored_by_the_span_loss(
    encoder: LoadedEncoder, batches: dict[str, Any]
) -> None:
    batch = dict(batches["binary_pairs"])
    for key in ("start_positions", "end_positions", "sentence_targets", "sentence_evidence"):
        batch[key] = torch.full_like(batch[key], IGNORE_INDEX)
    for span_head in SPAN_HEADS:
        _, _, losses = run_step(encoder, batch, span_head=span_head)
        assert losses["evidence_loss"] == 0


def test_head_types_is_the_architecture_signature(encoder: LoadedEncoder) -> None:
    config = ModelConfig(
        encoder="x", coupling="coupled", coupling_method="concat", span_head="biaffine"
    )
    model = build_model(config, encoder=encoder)
    signature = model.head_types()
    assert signature["span_head"] == "biaffine"
    assert signature["coupling_method"] == "concat"
    assert signature["hidden_size"] == 32
    assert all(isinstance(v, str | int) for v in signature.values())
