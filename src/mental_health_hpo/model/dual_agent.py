"""``MultiTaskModel``: one encoder, a criteria-matching head and an evidence-binding head.

It was called ``DualAgentModel``; that name stays as an alias so existing imports keep working.

Batch dict (from ``training.batching.DynamicPaddingCollator``), B windows, T tokens, C labels
(C = 1 for ``binary_pairs``, 9 for ``multi_label``):

- ``input_ids``, ``attention_mask`` (B, T) long; ``token_type_ids`` (B, T) long when the
  tokenizer makes them (BERT; absent for RoBERTa)
- ``context_mask`` (B, T) bool: tokens of the post segment (spans may only use these or 0)
- ``sentence_ids`` (B, T) long: window-local post sentence index of each token, -1 elsewhere
- ``labels`` (B, C) float 0/1; ``criterion_ids`` (B, C) long: index in ``constants.CRITERIA``
- ``start_positions``, ``end_positions`` (B, C) long: gold token span in the window, 0 = null,
  -100 = ignore (a positive pair whose evidence could not be aligned)
- ``sentence_targets`` (B, C) long: 0 = null, k = sentence with local id k - 1, -100 ignore
- ``sentence_evidence`` (B, C, S) long: 1 when window-local sentence s is evidence for label c,
  0 when not, -100 unknown or padding (the ``sentence_evidence`` head's target)
- ``window_index`` (B,) long: row in ``WindowFeatures`` (for merging; the model ignores it)

``forward(batch)`` returns ``criteria_logits`` (B, C), ``start_logits``/``end_logits``
(B, C, T) and, by span head, ``span_logits`` (B, C, T, T) or ``sentence_logits`` (B, C, 1 + S);
the default ``sentence_evidence`` head returns only ``sentence_evidence_logits`` (B, C, S).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mental_health_hpo.constants import CRITERIA
from mental_health_hpo.model.config import ModelConfig, SpanHead
from mental_health_hpo.model.coupling import Coupler
from mental_health_hpo.model.encoder import LoadedEncoder, load_encoder_for
from mental_health_hpo.model.heads import build_criteria_head
from mental_health_hpo.model.losses import criteria_loss, span_loss
from mental_health_hpo.model.pooling import Pooler
from mental_health_hpo.model.sentence_evidence import OUTPUT_KEY as SENTENCE_EVIDENCE_OUTPUT
from mental_health_hpo.model.sentence_evidence import TARGET_KEY as SENTENCE_EVIDENCE_TARGET
from mental_health_hpo.model.sentence_evidence import SentenceEvidenceHead, sentence_evidence_loss
from mental_health_hpo.model.span_heads import BiaffineSpanHead, SentenceRerankerHead, StartEndHead

_ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def encoder_hidden_size(encoder: nn.Module) -> int:
    """Width of the encoder's token states (``config.hidden_size`` of a transformers model)."""
    config: Any = getattr(encoder, "config", None)
    return int(config.hidden_size)


def build_span_head(
    kind: SpanHead,
    hidden_size: int,
    num_labels: int,
    *,
    mlp_hidden: int,
    dropout: float,
    activation: str,
    max_answer_tokens: int,
) -> nn.Module:
    """The evidence head named in ``ModelConfig.span_head``."""
    if kind == "start_end_linear":
        return StartEndHead(hidden_size, num_labels, None, dropout, activation)
    if kind == "start_end_mlp":
        return StartEndHead(hidden_size, num_labels, mlp_hidden, dropout, activation)
    if kind == "biaffine":
        return BiaffineSpanHead(
            hidden_size, num_labels, mlp_hidden, dropout, activation, max_answer_tokens
        )
    if kind == "sentence_reranker":
        return SentenceRerankerHead(hidden_size, num_labels, mlp_hidden, dropout, activation)
    if kind == "sentence_evidence":
        return SentenceEvidenceHead(hidden_size, num_labels, mlp_hidden, dropout, activation)
    raise ValueError(f"span_head: unknown {kind!r}")


class MultiTaskModel(nn.Module):
    """Encoder + pooling + criteria head + evidence head (+ optional coupling) + losses.

    Build it with ``build_model(config)``; ``tokenizer`` is attached for feature building.
    """

    def __init__(
        self,
        config: ModelConfig,
        encoder: nn.Module,
        tokenizer: Any = None,
        pos_weight: float | list[float] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.hidden_size = encoder_hidden_size(encoder)
        hidden = self.hidden_size
        labels = config.num_labels
        self.pooler = Pooler(config.pooling, hidden)
        self.span_head = build_span_head(
            config.span_head,
            hidden,
            labels,
            mlp_hidden=config.span_hidden_size,
            dropout=config.dropout,
            activation=config.activation,
            max_answer_tokens=config.max_answer_tokens,
        )
        self.coupler = (
            Coupler(config.coupling_method, hidden)
            if config.coupling == "coupled" and config.coupling_method is not None
            else None
        )
        in_features = self.coupler.out_features if self.coupler is not None else hidden
        self.criteria_head = build_criteria_head(
            config.criteria_head,
            in_features,
            labels,
            hidden=config.head_hidden_size,
            dropout=config.dropout,
            activation=config.activation,
            samples=config.multi_sample_dropout_samples,
        )
        weight = pos_weight if pos_weight is not None else config.pos_weight
        if config.loss == "weighted_bce" and weight is None:
            raise ValueError(
                "pos_weight: required for loss 'weighted_bce'; set it in ModelConfig or pass "
                "build_model(config, pos_weight=pos_weight_from_labels(...))"
            )
        values = weight if isinstance(weight, list) else [weight if weight is not None else 1.0]
        self.register_buffer("pos_weight", torch.tensor(values, dtype=torch.float32))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Logits for a batch dict (see the module docstring for keys and shapes)."""
        inputs = {key: batch[key] for key in _ENCODER_INPUTS if key in batch}
        encoded = self.encoder(
            **inputs, output_hidden_states=self.pooler.needs_all_hidden_states, return_dict=True
        )
        tokens = encoded.last_hidden_state
        pooled = self.pooler(tokens, batch["attention_mask"], encoded.hidden_states)
        context_mask = batch.get("context_mask")
        if context_mask is None:
            context_mask = batch["attention_mask"].bool()
        outputs, summary = self.span_head(tokens, context_mask, batch.get("sentence_ids"))
        if self.coupler is None:
            criteria_logits = self.criteria_head(pooled)
        else:
            per_criterion = self.criteria_head(self.coupler(pooled, summary))  # (B, C, C)
            criteria_logits = torch.diagonal(per_criterion, dim1=1, dim2=2)
        return {"criteria_logits": criteria_logits, **outputs}

    def _element_pos_weight(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """pos_weight per label of the batch: per criterion when 9 values are configured."""
        weight = self.get_buffer("pos_weight")
        if weight.numel() == 1:
            return weight
        ids = batch.get("criterion_ids")
        if ids is None:
            return weight
        return weight[ids]

    def compute_loss(
        self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """``loss`` (weighted total, to backprop), ``criteria_loss`` and ``evidence_loss``."""
        labels = batch["labels"].to(outputs["criteria_logits"].dtype)
        criteria = criteria_loss(
            outputs["criteria_logits"], labels, self.config, self._element_pos_weight(batch)
        )
        evidence = self._evidence_loss(outputs, batch)
        total = (
            self.config.criteria_loss_weight * criteria
            + self.config.evidence_loss_weight * evidence
        )
        return {"loss": total, "criteria_loss": criteria, "evidence_loss": evidence}

    def _evidence_loss(
        self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        if SENTENCE_EVIDENCE_OUTPUT in outputs:
            targets = batch.get(SENTENCE_EVIDENCE_TARGET)
            if targets is None:
                raise ValueError(
                    "span_head sentence_evidence needs 'sentence_evidence' targets in the batch "
                    "(build features with training.features.build_features)"
                )
            return sentence_evidence_loss(
                outputs[SENTENCE_EVIDENCE_OUTPUT],
                targets,
                kind=self.config.sentence_evidence_loss,
                pos_weight=self.config.sentence_evidence_pos_weight,
                gamma=self.config.sentence_evidence_gamma,
            )
        return span_loss(
            outputs,
            batch["start_positions"],
            batch["end_positions"],
            batch.get("sentence_targets"),
        )

    def head_types(self) -> dict[str, Any]:
        """Architecture signature for checkpoints: a load must match all of these."""
        config = self.config
        return {
            "encoder": config.encoder,
            "encoder_type": str(
                getattr(getattr(self.encoder, "config", None), "model_type", "unknown")
            ),
            "hidden_size": self.hidden_size,
            "input_format": config.input_format,
            "num_labels": config.num_labels,
            "pooling": config.pooling,
            "criteria_head": config.criteria_head,
            "head_hidden_size": config.head_hidden_size,
            "activation": config.activation,
            "span_head": config.span_head,
            "span_hidden_size": config.span_hidden_size,
            "coupling": config.coupling,
            "coupling_method": config.coupling_method or "",
        }


def build_model(
    config: ModelConfig,
    *,
    pos_weight: float | list[float] | None = None,
    encoder: LoadedEncoder | None = None,
    for_inference: bool = False,
    **load_overrides: Any,
) -> MultiTaskModel:
    """Load the encoder of ``config`` (local -> cache -> hub) and assemble the heads.

    ``encoder``: an already loaded ``LoadedEncoder`` to reuse; ``load_overrides`` go to
    ``load_encoder`` (``loader``, ``sleep``, ``delays``) for tests. ``pos_weight`` overrides
    ``config.pos_weight`` (see ``losses.pos_weight_from_labels``). ``for_inference``: the weights,
    the ``pos_weight`` buffer included, come from a checkpoint, so a ``weighted_bce`` model
    without a pos_weight gets a placeholder that ``load_state_dict`` replaces.
    """
    if for_inference and pos_weight is None and config.pos_weight is None:
        pos_weight = [1.0] * len(CRITERIA) if config.loss == "weighted_bce" else None
    loaded = encoder or load_encoder_for(config, **load_overrides)
    return MultiTaskModel(config, loaded.model, loaded.tokenizer, pos_weight=pos_weight)


#: Deprecated name of :class:`MultiTaskModel`, kept so that existing imports keep working.
DualAgentModel = MultiTaskModel
