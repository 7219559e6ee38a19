"""SQuAD-style sliding windows: window decoding and per-post merging of the predictions.

Why windows: ReDSM5 posts run to thousands of words, far past ``max_length``; each post is cut
into overlapping windows (``stride`` tokens of overlap) so evidence anywhere is seen. Each
window predicts independently; ``merge_window_predictions`` folds them back to one prediction per
(post, criterion): probability = max over windows; span = the window span with the largest
margin (span score - that window's null score), or no evidence when no margin is > 0.

Sentence-level evidence, the metric every head is compared on: the ``sentence_evidence`` head's
probability of each post sentence is the max over the windows that hold it, and a sentence is
predicted evidence at ``evidence_threshold``; a span head's span is mapped to the post sentences
it covers (``data.alignment.sentences_covered``), so both give ``pred_sentences``.

This module sits above ``training.features``: it reads ``WindowFeatures``, and the features
never import it (the char <-> token geometry they need is ``training.features.token_spans``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from mental_health_hpo.data.alignment import sentences_covered
from mental_health_hpo.model.sentence_evidence import OUTPUT_KEY as SENTENCE_EVIDENCE_OUTPUT
from mental_health_hpo.model.span_heads import MASKED_LOGIT, valid_span_matrix
from mental_health_hpo.training.features import WindowFeatures

NULL_POSITION = 0


@dataclass
class DecodedWindows:
    """Best span and scores of each window and label, as numpy arrays (N windows, C labels)."""

    window_index: np.ndarray  # (N,)
    probs: np.ndarray  # (N, C) sigmoid of the criteria logits
    span_start: np.ndarray  # (N, C) token index of the best non-null span (-1 when none)
    span_end: np.ndarray  # (N, C)
    span_score: np.ndarray  # (N, C)
    null_score: np.ndarray  # (N, C)
    #: per window, (C, S_window) evidence probabilities of its sentences (sentence_evidence
    #: head); empty for span heads, whose sentences come from their spans
    sentence_probs: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def concat(cls, parts: Sequence[DecodedWindows]) -> DecodedWindows:
        """Join the decodings of several batches."""
        arrays = {f: np.concatenate([getattr(p, f) for p in parts]) for f in _DECODED_FIELDS}
        sentence_probs = [probs for part in parts for probs in part.sentence_probs]
        return cls(**arrays, sentence_probs=sentence_probs)


_DECODED_FIELDS = ("window_index", "probs", "span_start", "span_end", "span_score", "null_score")


@torch.no_grad()
def decode_window_outputs(
    outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], max_answer_tokens: int
) -> DecodedWindows:
    """Best non-null span per window and label, with its score and the null score.

    Start/end heads: span score = start[i] + end[j] over valid spans; null = start[0] + end[0].
    biaffine: ``span_logits[i, j]``; null = [0, 0]. sentence_reranker: the best sentence's logit,
    spanning its first to last token; null = index 0. Ties go to the first (leftmost) span.
    """
    context = batch["context_mask"].bool()
    sentence_probs: list[np.ndarray] = []
    if SENTENCE_EVIDENCE_OUTPUT in outputs:
        logits = outputs[SENTENCE_EVIDENCE_OUTPUT].float()
        best = _decode_sentence_evidence(logits, batch["sentence_ids"])
        sentence_probs = _window_sentence_probs(logits, batch["sentence_ids"])
    elif "sentence_logits" in outputs:
        best = _decode_sentences(outputs["sentence_logits"].float(), batch["sentence_ids"])
    else:
        if "span_logits" in outputs:
            spans = outputs["span_logits"].float()
            null = spans[..., 0, 0]
        else:
            start, end = outputs["start_logits"].float(), outputs["end_logits"].float()
            spans = start.unsqueeze(-1) + end.unsqueeze(-2)
            null = start[..., 0] + end[..., 0]
        valid = valid_span_matrix(context, max_answer_tokens)
        valid[:, 0, 0] = False
        best = _argmax_spans(spans, valid.unsqueeze(1), null)
    probs = torch.sigmoid(outputs["criteria_logits"].float())
    span_start, span_end, span_score, null_score = (t.cpu().numpy() for t in best)
    return DecodedWindows(
        batch["window_index"].cpu().numpy(),
        probs.cpu().numpy(),
        span_start,
        span_end,
        span_score,
        null_score,
        sentence_probs=sentence_probs,
    )


def _window_sentence_probs(logits: torch.Tensor, sentence_ids: torch.Tensor) -> list[np.ndarray]:
    """Per window, the (C, S_window) sigmoid of its own sentences (batch padding cut off)."""
    counts = (sentence_ids.max(dim=-1).values + 1).clamp(min=0).cpu().tolist()
    probs = torch.sigmoid(logits).cpu().numpy()
    return [probs[row, :, : int(count)] for row, count in enumerate(counts)]


def _decode_sentence_evidence(
    logits: torch.Tensor, sentence_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The most likely evidence sentence as a span (for the span metrics); null score 0.

    A logit of 0 is probability 0.5, so "margin > 0" means the sentence is more likely evidence
    than not, the same rule the span heads' null score gives.
    """
    masked = logits.masked_fill(logits <= MASKED_LOGIT, float("-inf"))
    score, best = masked.max(dim=-1)  # (B, C)
    length = sentence_ids.shape[1]
    positions = torch.arange(length, device=sentence_ids.device)
    member = sentence_ids.unsqueeze(1) == best.unsqueeze(-1)  # (B, C, T)
    first = torch.where(member, positions, length).min(dim=-1).values
    last = torch.where(member, positions, -1).max(dim=-1).values
    none = torch.isinf(score) | (last < 0)
    null = torch.zeros_like(score)
    return torch.where(none, -1, first), torch.where(none, -1, last), score, null


def _argmax_spans(
    spans: torch.Tensor, valid: torch.Tensor, null: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    length = spans.shape[-1]
    masked = spans.masked_fill(~valid, float("-inf")).flatten(-2)
    score, flat = masked.max(dim=-1)  # first maximum on ties
    none = torch.isinf(score)
    start = torch.where(none, -1, flat // length)
    end = torch.where(none, -1, flat % length)
    return start, end, score, null


def _decode_sentences(
    logits: torch.Tensor, sentence_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    null = logits[..., 0]
    sentences = logits[..., 1:].masked_fill(logits[..., 1:] <= MASKED_LOGIT, float("-inf"))
    score, best = sentences.max(dim=-1)  # (B, C)
    length = sentence_ids.shape[1]
    positions = torch.arange(length, device=sentence_ids.device)
    member = sentence_ids.unsqueeze(1) == best.unsqueeze(-1)  # (B, C, T)
    first = torch.where(member, positions, length).min(dim=-1).values
    last = torch.where(member, positions, -1).max(dim=-1).values
    none = torch.isinf(score) | (last < 0)
    return torch.where(none, -1, first), torch.where(none, -1, last), score, null


def merge_window_predictions(
    features: WindowFeatures,
    decoded: DecodedWindows,
    threshold: float = 0.5,
    gate_span_on_label: bool = False,
    evidence_threshold: float = 0.5,
) -> pd.DataFrame:
    """One row per (post, criterion) of ``features.pairs`` with merged predictions.

    Columns: the gold columns of ``features.pairs`` (``post_id``, ``criterion``, ``label``,
    ``alignment``, ``gold_spans``) plus ``text``, ``prob`` (max over windows), ``pred_label``
    (prob >= threshold), ``pred_start``/``pred_end`` (char offsets, -1 for no evidence),
    ``pred_text``, ``span_margin`` (best span score - null score), ``sentence_probs`` (one
    evidence probability per post sentence; empty for span heads) and ``pred_sentences`` (post
    sentence ids predicted as evidence). With ``gate_span_on_label`` a pair predicted negative
    gets no evidence. Pairs without a decoded window get prob 0.
    """
    sentence_probs = _merge_sentence_probs(features, decoded)
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for row, window in enumerate(decoded.window_index.tolist()):
        post_id = features.window_post_ids[window]
        for label_index, criterion in enumerate(features.window_criteria(window)):
            key = (post_id, criterion)
            prob = float(decoded.probs[row, label_index])
            margin = float(
                decoded.span_score[row, label_index] - decoded.null_score[row, label_index]
            )
            entry = best.setdefault(key, {"prob": prob, "margin": float("-inf"), "span": (-1, -1)})
            entry["prob"] = max(entry["prob"], prob)
            start_token = int(decoded.span_start[row, label_index])
            if start_token >= 0 and margin > entry["margin"]:
                offsets = features.offsets[window]
                end_token = int(decoded.span_end[row, label_index])
                entry["margin"] = margin
                entry["span"] = (int(offsets[start_token, 0]), int(offsets[end_token, 1]))
    merged = features.pairs.copy()
    merged["text"] = merged["post_id"].map(features.texts)
    probs, starts, ends, margins = [], [], [], []
    for post_id, criterion in zip(merged["post_id"], merged["criterion"], strict=True):
        entry = best.get(
            (post_id, criterion), {"prob": 0.0, "margin": float("-inf"), "span": (-1, -1)}
        )
        probs.append(entry["prob"])
        margins.append(entry["margin"])
        keep = entry["margin"] > 0 and (not gate_span_on_label or entry["prob"] >= threshold)
        span = entry["span"] if keep else (-1, -1)
        starts.append(span[0])
        ends.append(span[1])
    merged["prob"] = probs
    merged["pred_label"] = (merged["prob"] >= threshold).astype(int)
    merged["pred_start"] = starts
    merged["pred_end"] = ends
    merged["span_margin"] = margins
    merged["pred_text"] = [
        text[s:e] if s >= 0 else ""
        for text, s, e in zip(merged["text"], merged["pred_start"], merged["pred_end"], strict=True)
    ]
    keys = list(zip(merged["post_id"], merged["criterion"], strict=True))
    merged["sentence_probs"] = [sentence_probs.get(key, []) for key in keys]
    predicted: list[list[int]] = []
    for (post_id, _), probs, start, end, prob in zip(
        keys, merged["sentence_probs"], starts, ends, merged["prob"], strict=True
    ):
        if gate_span_on_label and prob < threshold:
            predicted.append([])
        elif decoded.sentence_probs:
            predicted.append([i for i, p in enumerate(probs) if p >= evidence_threshold])
        else:
            spans = [(start, end)] if start >= 0 else []
            predicted.append(sentences_covered(features.sentence_spans.get(post_id, []), spans))
    merged["pred_sentences"] = predicted
    return merged


def _merge_sentence_probs(
    features: WindowFeatures, decoded: DecodedWindows
) -> dict[tuple[str, str], list[float]]:
    """(post, criterion) -> evidence probability of each post sentence, max over windows."""
    merged: dict[tuple[str, str], list[float]] = {}
    if not decoded.sentence_probs:
        return merged
    for row, window in enumerate(decoded.window_index.tolist()):
        post_id = features.window_post_ids[window]
        first = features.window_first_sentence[window]
        count = len(features.sentence_spans.get(post_id, []))
        window_probs = decoded.sentence_probs[row]
        for label_index, criterion in enumerate(features.window_criteria(window)):
            probs = merged.setdefault((post_id, criterion), [0.0] * count)
            for local, value in enumerate(window_probs[label_index].tolist()):
                if 0 <= first + local < count:
                    probs[first + local] = max(probs[first + local], float(value))
    return merged
