"""Evidence-binding heads: where in the post is the evidence for each criterion, or none.

Conventions shared by every head (SQuAD v2 style): position 0 (the [CLS] token) is the null
("no evidence") position; only post tokens (``context_mask``) and position 0 may be chosen.
Each head returns ``(outputs, summary)``: ``outputs`` holds its logits (keys below) and
``summary`` (B, C, H) is a per-criterion evidence vector (token states weighted by the head's
scores) used by the coupled mode.

- ``start_end_linear`` / ``start_end_mlp``: ``start_logits``, ``end_logits`` (B, C, T).
- ``biaffine``: also ``span_logits`` (B, C, T, T), score of span [i, j]; null = [0, 0].
- ``sentence_reranker``: ``sentence_logits`` (B, C, 1 + S): index 0 null, k the post sentence
  with window-local id k - 1 (``sentence_ids`` in the batch); start/end logits are derived.
- ``sentence_evidence`` (the default, ``model.sentence_evidence``): ``sentence_evidence_logits``
  (B, C, S), one yes/no logit per window sentence and criterion.
"""

from __future__ import annotations

import torch
from torch import nn

from mental_health_hpo.model.pooling import make_activation

#: Finite "minus infinity": keeps softmax and cross-entropy free of NaN, also in half precision.
MASKED_LOGIT = -1e4


def allowed_positions(context_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: post tokens plus the null position 0."""
    allowed = context_mask.bool().clone()
    allowed[:, 0] = True
    return allowed


def _mask_tokens(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Mask (B, C, T) logits outside ``allowed`` (B, T)."""
    return logits.masked_fill(~allowed.unsqueeze(1), MASKED_LOGIT)


def _summary(
    scores: torch.Tensor, hidden: torch.Tensor, context_mask: torch.Tensor
) -> torch.Tensor:
    """Softmax over post tokens of ``scores`` (B, C, T) -> weighted token states (B, C, H)."""
    mask = context_mask.bool().unsqueeze(1)
    weights = torch.softmax(scores.masked_fill(~mask, MASKED_LOGIT), dim=-1)
    weights = weights * mask.to(weights.dtype)  # windows without post tokens -> zero vector
    return torch.einsum("bct,bth->bch", weights, hidden)


class StartEndHead(nn.Module):
    """Independent start and end scores per token and criterion (linear or one-hidden-layer MLP)."""

    def __init__(
        self, hidden_size: int, num_labels: int, mlp_hidden: int | None, dropout: float, act: str
    ) -> None:
        super().__init__()
        self.num_labels = num_labels
        if mlp_hidden is None:
            self.net: nn.Module = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(hidden_size, 2 * num_labels)
            )
        else:
            self.net = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(hidden_size, mlp_hidden),
                make_activation(act),
                nn.Dropout(dropout),
                nn.Linear(mlp_hidden, 2 * num_labels),
            )

    def forward(
        self, hidden: torch.Tensor, context_mask: torch.Tensor, sentence_ids: torch.Tensor | None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        scores = self.net(hidden).transpose(1, 2)  # (B, 2C, T)
        start, end = scores[:, : self.num_labels], scores[:, self.num_labels :]
        allowed = allowed_positions(context_mask)
        outputs = {
            "start_logits": _mask_tokens(start, allowed),
            "end_logits": _mask_tokens(end, allowed),
        }
        return outputs, _summary((start + end) / 2, hidden, context_mask)


class BiaffineSpanHead(nn.Module):
    """Scores every (start, end) pair with a per-criterion biaffine form: s_i^T U_c e_j.

    Valid spans: post tokens with start <= end < start + ``max_answer_tokens``, plus the null
    span (0, 0). Memory is B x C x T x T: fine for T <= 512 and small batches.
    """

    def __init__(
        self,
        hidden_size: int,
        num_labels: int,
        proj: int,
        dropout: float,
        act: str,
        max_answer_tokens: int,
    ) -> None:
        super().__init__()
        self.start_proj = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(hidden_size, proj), make_activation(act)
        )
        self.end_proj = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(hidden_size, proj), make_activation(act)
        )
        self.bilinear = nn.Parameter(torch.zeros(num_labels, proj + 1, proj + 1))
        nn.init.xavier_uniform_(self.bilinear)
        self.max_answer_tokens = max_answer_tokens

    def forward(
        self, hidden: torch.Tensor, context_mask: torch.Tensor, sentence_ids: torch.Tensor | None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        ones = hidden.new_ones(*hidden.shape[:2], 1)
        starts = torch.cat([self.start_proj(hidden), ones], dim=-1)  # (B, T, P + 1)
        ends = torch.cat([self.end_proj(hidden), ones], dim=-1)
        spans = torch.einsum("bip,cpq,bjq->bcij", starts, self.bilinear, ends)
        valid = valid_span_matrix(context_mask, self.max_answer_tokens)  # (B, T, T)
        spans = spans.masked_fill(~valid.unsqueeze(1), MASKED_LOGIT)
        start_logits = torch.logsumexp(spans, dim=-1)
        end_logits = torch.logsumexp(spans, dim=-2)
        outputs = {"span_logits": spans, "start_logits": start_logits, "end_logits": end_logits}
        return outputs, _summary((start_logits + end_logits) / 2, hidden, context_mask)


def valid_span_matrix(context_mask: torch.Tensor, max_answer_tokens: int) -> torch.Tensor:
    """(B, T, T) bool: post-token spans i <= j < i + max_answer_tokens, and the null (0, 0)."""
    length = context_mask.shape[1]
    idx = torch.arange(length, device=context_mask.device)
    band = (idx[None, :] >= idx[:, None]) & (idx[None, :] - idx[:, None] < max_answer_tokens)
    ctx = context_mask.bool()
    valid = band.unsqueeze(0) & ctx.unsqueeze(2) & ctx.unsqueeze(1)
    valid[:, 0, 0] = True
    return valid


def sentence_token_matrix(sentence_ids: torch.Tensor) -> torch.Tensor:
    """(B, S, T) float one-hot: token t belongs to window-local sentence s (ids < 0: none)."""
    count = int(sentence_ids.max().item()) + 1 if sentence_ids.numel() else 0
    count = max(count, 1)
    ids = torch.arange(count, device=sentence_ids.device)
    return (sentence_ids.unsqueeze(1) == ids[None, :, None]).float()


class SentenceRerankerHead(nn.Module):
    """Scores each post sentence in the window (mean of its tokens) against a null score ([CLS]).

    Why: ReDSM5 evidence is annotated as whole sentences, so ranking sentences is a natural,
    easier target than free token spans. Start/end logits are derived (a sentence's score on
    its first/last token) so span decoding and coupling stay head-agnostic.
    """

    def __init__(
        self, hidden_size: int, num_labels: int, mlp_hidden: int, dropout: float, act: str
    ) -> None:
        super().__init__()
        self.scorer = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(hidden_size, mlp_hidden),
            make_activation(act),
            nn.Dropout(dropout),
            nn.Linear(mlp_hidden, num_labels),
        )
        self.null_scorer = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, num_labels))

    def forward(
        self, hidden: torch.Tensor, context_mask: torch.Tensor, sentence_ids: torch.Tensor | None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        if sentence_ids is None:
            raise ValueError("span_head: sentence_reranker needs 'sentence_ids' in the batch")
        membership = sentence_token_matrix(sentence_ids).to(hidden.dtype)  # (B, S, T)
        counts = membership.sum(dim=-1)  # (B, S)
        sentences = membership @ hidden / counts.clamp(min=1.0).unsqueeze(-1)  # (B, S, H)
        sentence_scores = self.scorer(sentences).transpose(1, 2)  # (B, C, S)
        sentence_scores = sentence_scores.masked_fill((counts == 0).unsqueeze(1), MASKED_LOGIT)
        null = self.null_scorer(hidden[:, 0]).unsqueeze(-1)  # (B, C, 1)
        logits = torch.cat([null, sentence_scores], dim=-1)
        # Derived token scores: each token carries its sentence's score; position 0 the null.
        token_scores = torch.einsum("bcs,bst->bct", sentence_scores, membership)
        allowed = allowed_positions(context_mask) & (
            (sentence_ids >= 0) | (torch.arange(hidden.shape[1], device=hidden.device) == 0)
        )
        token_scores = token_scores.clone()
        token_scores[:, :, 0] = null.squeeze(-1)
        token_scores = _mask_tokens(token_scores, allowed)
        weights = torch.softmax(sentence_scores, dim=-1) * (counts > 0).unsqueeze(1).to(
            hidden.dtype
        )
        summary = torch.einsum("bcs,bsh->bch", weights, sentences)
        outputs = {
            "sentence_logits": logits,
            "start_logits": token_scores,
            "end_logits": token_scores,
        }
        return outputs, summary
