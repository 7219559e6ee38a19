"""Where chars land in one window's tokens: a char span as a token span, each token's sentence.

Pure geometry on a window's offset mapping, with no notion of labels or of decoding: the lowest
piece of the windowing, used to build the targets (:mod:`.targets`). Here, not in
``training.windows`` (decoding and merging, which read ``WindowFeatures``), so that the features
never import the decoding and the imports between the two run one way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def char_span_to_tokens(
    offsets: np.ndarray, context_mask: np.ndarray, start: int, end: int
) -> tuple[int, int] | None:
    """Token (start, end) inclusive of char span [start, end) in one window, or None.

    None when the span is empty or not wholly inside the window's post tokens (SQuAD v2: such
    windows are trained towards the null position).
    """
    if start < 0 or end <= start:
        return None
    positions = np.flatnonzero(context_mask)
    if positions.size == 0:
        return None
    first, last = positions[0], positions[-1]
    if start < offsets[first, 0] or end > offsets[last, 1]:
        return None
    starts, ends = offsets[positions, 0], offsets[positions, 1]
    covering_start = np.flatnonzero(ends > start)
    covering_end = np.flatnonzero(starts < end)
    if covering_start.size == 0 or covering_end.size == 0:
        return None
    token_start, token_end = int(positions[covering_start[0]]), int(positions[covering_end[-1]])
    return (token_start, token_end) if token_end >= token_start else None


def token_sentence_ids(
    offsets: np.ndarray, context_mask: np.ndarray, sentence_starts: Sequence[int]
) -> tuple[np.ndarray, int]:
    """Window-local sentence id of each token (-1 outside the post) and the first global id.

    A token belongs to the last sentence starting at or before it (text between sentences goes
    to the sentence before). Local id = global id - first global id in the window.
    """
    ids = np.full(len(offsets), -1, dtype=np.int64)
    if not context_mask.any():
        return ids, 0
    starts = np.asarray(sentence_starts if len(sentence_starts) else [0], dtype=np.int64)
    global_ids = np.clip(
        np.searchsorted(starts, offsets[context_mask, 0], side="right") - 1, 0, None
    )
    first = int(global_ids.min())
    ids[context_mask] = global_ids - first
    return ids, first
