"""Evidence alignment: character offsets of each annotated sentence inside its post.

Why three stages: in the full ReDSM5 almost every ``sentence_text`` is verbatim in its post, but
some differ in case or spacing, and the public sample was paraphrased apart from the posts. So:
exact match, then a whitespace- and case-insensitive match, then the post sentence (or pair of
adjacent sentences) most similar to the annotation above a threshold; otherwise no span, and the
pair keeps its label.

Example:
    >>> span = align_sentence("I slept badly. I ate.", "i  ATE.", AlignmentConfig())
    >>> span.outcome, span.start, span.end
    ('normalized', 15, 21)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

import numpy as np
import pandas as pd

Outcome = Literal["exact", "normalized", "fuzzy", "unaligned"]
OUTCOMES: tuple[Outcome, ...] = ("exact", "normalized", "fuzzy", "unaligned")

_SENTENCE_END = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")
_WORD = re.compile(r"\w+")
# Typographic variants that paraphrasing tools and keyboards swap freely; one char for one char,
# so offsets survive.
_TYPOGRAPHY = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "—": "-", "–": "-"})


@dataclass(frozen=True)
class AlignmentConfig:
    """How hard to try before giving up on a span.

    Attributes:
        fuzzy_threshold: minimum similarity in [0, 1] of the best post sentence.
        max_window_sentences: fuzzy candidates are runs of up to this many adjacent sentences.
    """

    fuzzy_threshold: float = 0.3
    max_window_sentences: int = 2

    def __post_init__(self) -> None:
        if not 0.0 < self.fuzzy_threshold <= 1.0:
            raise ValueError(
                f"alignment.fuzzy_threshold must be in (0, 1], got {self.fuzzy_threshold}"
            )
        if self.max_window_sentences < 1:
            raise ValueError("alignment.max_window_sentences must be >= 1")


@dataclass(frozen=True)
class Span:
    """Where an annotation sits in its post; ``start == end == -1`` when unaligned."""

    outcome: Outcome
    start: int
    end: int
    score: float


def _normalize_with_map(text: str) -> tuple[str, list[int]]:
    """Casefold and collapse whitespace, keeping each kept char's offset in ``text``."""
    chars: list[str] = []
    offsets: list[int] = []
    previous_space = True
    for i, ch in enumerate(text.translate(_TYPOGRAPHY)):
        if ch.isspace():
            if not previous_space:
                chars.append(" ")
                offsets.append(i)
            previous_space = True
            continue
        for folded in ch.casefold():
            chars.append(folded)
            offsets.append(i)
        previous_space = False
    if chars and chars[-1] == " ":
        chars.pop()
        offsets.pop()
    return "".join(chars), offsets


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (trimmed of surrounding spaces)."""
    spans = []
    for match in _SENTENCE_END.finditer(text):
        start, end = match.span()
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            spans.append((start, end))
    return spans


def sentences_covered(
    sentences: list[tuple[int, int]], spans: list[list[int]] | list[tuple[int, int]]
) -> list[int]:
    """Indices of the ``sentences`` that the gold ``spans`` cover (sentence-level evidence).

    A sentence counts when its overlap with a span is at least half of the shorter of the two:
    an aligned annotation that is one post sentence marks that sentence; a fuzzy match of two
    adjacent sentences marks both; a span whose sentence the splitter cut in two marks the
    halves it mostly covers, and a stray overlap of a few characters marks nothing.
    """
    covered: list[int] = []
    for index, (begin, end) in enumerate(sentences):
        for span in spans:
            start, stop = int(span[0]), int(span[1])
            if start < 0 or stop <= start:
                continue
            overlap = min(end, stop) - max(begin, start)
            if overlap > 0 and 2 * overlap >= min(end - begin, stop - start):
                covered.append(index)
                break
    return covered


def _similarity(a: str, b: str) -> float:
    """Mean of char-sequence similarity and word overlap: robust to paraphrase and reordering."""
    a_norm, _ = _normalize_with_map(a)
    b_norm, _ = _normalize_with_map(b)
    char_ratio = SequenceMatcher(None, a_norm, b_norm, autojunk=False).ratio()
    a_words, b_words = set(_WORD.findall(a_norm)), set(_WORD.findall(b_norm))
    if not a_words or not b_words:
        return char_ratio
    overlap = len(a_words & b_words) / max(len(a_words), len(b_words))
    return (char_ratio + overlap) / 2


def align_sentence(post: str, sentence: str, config: AlignmentConfig) -> Span:
    """Find ``sentence`` in ``post``: exact, then normalized, then fuzzy, else unaligned."""
    needle = sentence.strip()
    start = post.find(needle) if needle else -1
    if start >= 0:
        return Span("exact", start, start + len(needle), 1.0)

    norm_post, offsets = _normalize_with_map(post)
    norm_needle, _ = _normalize_with_map(needle)
    if norm_needle:
        found = norm_post.find(norm_needle)
        if found >= 0:
            last = found + len(norm_needle) - 1
            return Span("normalized", offsets[found], offsets[last] + 1, 1.0)

    best = Span("unaligned", -1, -1, 0.0)
    sentences = split_sentences(post)
    for i in range(len(sentences)):
        for width in range(1, config.max_window_sentences + 1):
            if i + width > len(sentences):
                break
            begin, end = sentences[i][0], sentences[i + width - 1][1]
            score = _similarity(post[begin:end], needle)
            if score > best.score:
                best = Span("fuzzy", begin, end, score)
    if best.score >= config.fuzzy_threshold:
        return best
    return Span("unaligned", -1, -1, best.score)


def align_annotations(
    posts: pd.DataFrame, annotations: pd.DataFrame, config: AlignmentConfig
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Add ``evidence_start``, ``evidence_end``, ``alignment`` and ``alignment_score`` columns.

    Returns the aligned annotations and the count of each outcome (every outcome is present,
    zero or not), so the report always has the same keys.
    """
    text_by_post = dict(zip(posts["post_id"], posts["text"], strict=True))
    spans = [
        align_sentence(str(text_by_post[post_id]), str(sentence), config)
        for post_id, sentence in zip(
            annotations["post_id"], annotations["sentence_text"], strict=True
        )
    ]
    aligned = annotations.copy()
    aligned["evidence_start"] = np.array([s.start for s in spans], dtype=np.int64)
    aligned["evidence_end"] = np.array([s.end for s in spans], dtype=np.int64)
    aligned["alignment"] = [s.outcome for s in spans]
    aligned["alignment_score"] = np.array([s.score for s in spans], dtype=np.float64)
    counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
    for span in spans:
        counts[span.outcome] += 1
    return aligned, counts
