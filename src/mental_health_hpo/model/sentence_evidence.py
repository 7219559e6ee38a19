"""Sentence-level evidence: for each post sentence and each criterion, is it evidence?

Why this is the default evidence formulation: ReDSM5 annotates evidence as whole sentences (each
(sentence, symptom) pair has a status), and the same lab's BDI-Sen and the eRisk symptom tasks
score sentence relevance. A span head must find token boundaries the annotators never drew; this
head only decides, per sentence and criterion, yes or no, and several sentences may be evidence
for one criterion (the reranker of ``span_heads`` can pick only one).

Most (sentence, criterion) cells are "no": a post has ~10 sentences and 9 criteria and carries
evidence for one or two. Plain BCE then learns "always no" (the failure the issue describes:
null accuracy 1.0, F1 0), so the loss up-weights the positive cells (``pos_weight``) or
down-weights the easy negatives (focal).

Output: ``sentence_evidence_logits`` (B, C, S), S the window's sentences (``sentence_ids``),
``MASKED_LOGIT`` where a window has no such sentence; plus a (B, C, H) evidence summary (the
sentence states weighted by their evidence probability) for the coupled mode.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from mental_health_hpo.model.losses import IGNORE_INDEX
from mental_health_hpo.model.pooling import make_activation
from mental_health_hpo.model.span_heads import MASKED_LOGIT, sentence_token_matrix

OUTPUT_KEY = "sentence_evidence_logits"
TARGET_KEY = "sentence_evidence"


class SentenceEvidenceHead(nn.Module):
    """Scores each window sentence (mean of its tokens, next to [CLS]) for every criterion.

    The [CLS] state gives the sentence its post's context (a denial two sentences earlier, the
    criterion description in ``binary_pairs``) without a second encoder pass.
    """

    def __init__(
        self, hidden_size: int, num_labels: int, mlp_hidden: int, dropout: float, act: str
    ) -> None:
        super().__init__()
        self.scorer = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(2 * hidden_size, mlp_hidden),
            make_activation(act),
            nn.Dropout(dropout),
            nn.Linear(mlp_hidden, num_labels),
        )

    def forward(
        self, hidden: torch.Tensor, context_mask: torch.Tensor, sentence_ids: torch.Tensor | None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        if sentence_ids is None:
            raise ValueError("span_head: sentence_evidence needs 'sentence_ids' in the batch")
        membership = sentence_token_matrix(sentence_ids).to(hidden.dtype)  # (B, S, T)
        counts = membership.sum(dim=-1)  # (B, S)
        sentences = membership @ hidden / counts.clamp(min=1.0).unsqueeze(-1)  # (B, S, H)
        cls = hidden[:, :1].expand(-1, sentences.shape[1], -1)
        logits = self.scorer(torch.cat([sentences, cls], dim=-1)).transpose(1, 2)  # (B, C, S)
        empty = (counts == 0).unsqueeze(1)
        logits = logits.masked_fill(empty, MASKED_LOGIT)
        weights = torch.sigmoid(logits) * (~empty).to(hidden.dtype)
        weights = weights / weights.sum(dim=-1, keepdim=True).clamp(min=1e-6)
        summary = torch.einsum("bcs,bsh->bch", weights, sentences)
        return {OUTPUT_KEY: logits}, summary


def sentence_evidence_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    kind: str,
    pos_weight: float,
    gamma: float,
) -> torch.Tensor:
    """Imbalance-aware BCE over the known (sentence, criterion) cells; 0 when there are none.

    ``targets`` (B, C, S') long: 1 evidence, 0 not, ``IGNORE_INDEX`` unknown or padding (S' may
    exceed the logits' S when the collator padded wider; extra columns are ignored).
    ``kind``: ``weighted_bce`` (positives x ``pos_weight``) or ``focal`` (the same, times
    (1 - p_t) ** ``gamma``).
    """
    width = logits.shape[-1]
    targets = targets[..., :width]
    if targets.shape[-1] < width:
        pad = torch.full(
            (*targets.shape[:-1], width - targets.shape[-1]), IGNORE_INDEX, device=targets.device
        )
        targets = torch.cat([targets, pad.to(targets.dtype)], dim=-1)
    known = (targets != IGNORE_INDEX) & (logits > MASKED_LOGIT)
    if not bool(known.any()):
        return logits.sum() * 0.0
    scores = logits[known].float()
    gold = targets[known].float()
    weight = torch.tensor(pos_weight, dtype=scores.dtype, device=scores.device)
    bce = functional.binary_cross_entropy_with_logits(
        scores, gold, pos_weight=weight, reduction="none"
    )
    if kind == "focal":
        probs = torch.sigmoid(scores)
        p_t = probs * gold + (1 - probs) * (1 - gold)
        bce = bce * (1 - p_t).clamp(min=0.0) ** gamma
    elif kind != "weighted_bce":
        raise ValueError(f"sentence_evidence_loss: unknown {kind!r}")
    return bce.mean()
