"""The training targets of one window: span start/end tokens, the span's sentence, and the
(labels, sentences) evidence matrix.

One rule set for every input format: no evidence trains towards the null position 0, and a
positive pair whose evidence could not be aligned is ``IGNORE_INDEX`` (unknown, never taught
as "no evidence").
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np

from mental_health_hpo.model.losses import IGNORE_INDEX
from mental_health_hpo.training.features.token_spans import char_span_to_tokens

#: A char target of ``(-1, -1)``: a positive without an aligned span, ignored by the losses.
UNALIGNED = (-1, -1)

#: (start, end) chars of a pair's evidence, None for no evidence, ``UNALIGNED`` to ignore.
CharTarget: TypeAlias = tuple[int, int] | None


def span_target(label: int, start: int, end: int) -> CharTarget:
    """(start, end) chars of the target, None for no evidence, (-1, -1) to ignore."""
    if label == 1 and start < 0:
        return UNALIGNED  # positive without an aligned span: do not teach "no evidence"
    return (start, end) if start >= 0 and end > start else None


def token_target(target: CharTarget, offsets: np.ndarray, context: np.ndarray) -> tuple[int, int]:
    """The window's (start, end) token target: null (0, 0) when the span is not wholly inside."""
    if target is None:
        return (0, 0)
    if target == UNALIGNED:
        return (IGNORE_INDEX, IGNORE_INDEX)
    span = char_span_to_tokens(offsets, context, *target)
    return span if span is not None else (0, 0)


def sentence_target(
    target: CharTarget, token_span: tuple[int, int], sentence_ids: np.ndarray
) -> int:
    """1 + the window-local sentence of the span's first token; 0 for null."""
    if target == UNALIGNED:
        return IGNORE_INDEX
    if token_span[0] <= 0:
        return 0
    return int(sentence_ids[token_span[0]]) + 1


def sentence_evidence_target(
    post_id: str,
    criteria: tuple[str, ...],
    sentence_ids: np.ndarray,
    first_sentence: int,
    gold_sentences: dict[tuple[str, str], set[int] | None],
) -> np.ndarray:
    """(C, S) int8 of one window: 1 evidence, 0 not, -1 unknown (unaligned positive)."""
    count = int(sentence_ids.max()) + 1 if sentence_ids.size and sentence_ids.max() >= 0 else 0
    target = np.zeros((len(criteria), count), dtype=np.int8)
    for row, criterion in enumerate(criteria):
        gold = gold_sentences.get((post_id, criterion), set())
        if gold is None:
            target[row] = -1
            continue
        for sentence in gold:
            local = sentence - first_sentence
            if 0 <= local < count:
                target[row, local] = 1
    return target
