"""Tokenization of a ``model_input`` table into sliding windows, for either input format.

- ``binary_pairs``: one example per (post, criterion): [CLS] criterion description [SEP] post
  [SEP] (``truncation="only_second"``), one label, one span.
- ``multi_label``: one example per post: [CLS] post [SEP], nine labels, one span per criterion.

Each example becomes one or more windows (the tokenizer's overflow with ``stride``). Per window
and label the span target is the token span of the primary evidence when it lies wholly inside
the window, else the null position 0; positive pairs whose evidence could not be aligned get
``IGNORE_INDEX`` (no span loss). The per-window targets are :mod:`.targets`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mental_health_hpo.constants import CRITERIA, CRITERION_DESCRIPTIONS
from mental_health_hpo.model.config import InputFormat
from mental_health_hpo.training.features.gold_table import gold_evidence_table, gold_sentence_sets
from mental_health_hpo.training.features.targets import (
    CharTarget,
    sentence_evidence_target,
    sentence_target,
    span_target,
    token_target,
)
from mental_health_hpo.training.features.token_spans import token_sentence_ids
from mental_health_hpo.training.features.window_features import WindowFeatures

CRITERION_INDEX = {name: i for i, name in enumerate(CRITERIA)}


def build_features(
    table: pd.DataFrame,
    tokenizer: Any,
    *,
    input_format: InputFormat,
    max_length: int,
    stride: int,
) -> WindowFeatures:
    """Tokenize ``table`` (a ``model_input`` split) into sliding-window features.

    ``tokenizer`` must be a fast tokenizer (offset mapping). Raises ``ValueError`` naming
    ``stride`` when it leaves no room for the post in a window.
    """
    if table.empty:
        raise ValueError(
            "model_input table is empty: this split has no posts (a tiny corpus and a small "
            "share in data_ingest.splits); raise the split's share or use more posts"
        )
    pairs, texts, sentence_spans = gold_evidence_table(table)
    post_ids = list(dict.fromkeys(pairs["post_id"]))
    sentence_starts = {pid: [s for s, _ in sentence_spans[pid]] for pid in post_ids}
    gold_sentences = gold_sentence_sets(pairs)

    if input_format == "binary_pairs":
        firsts = [CRITERION_DESCRIPTIONS[c] for c in pairs["criterion"]]
        _check_room(tokenizer, firsts, max_length, stride)
        encoded = tokenizer(
            firsts,
            [texts[p] for p in pairs["post_id"]],
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        post_segment = 1
        example_posts = list(pairs["post_id"])
        example_criteria: list[str | None] = list(pairs["criterion"])
        targets = [
            [span_target(r.label, r.evidence_start, r.evidence_end)]
            for r in pairs.itertuples(index=False)
        ]
        example_labels = [[float(label)] for label in pairs["label"]]
    else:
        _check_room(tokenizer, None, max_length, stride)
        encoded = tokenizer(
            [texts[p] for p in post_ids],
            truncation=True,
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        post_segment = 0
        example_posts = post_ids
        example_criteria = [None] * len(post_ids)
        by_key = {(r.post_id, r.criterion): r for r in pairs.itertuples(index=False)}
        targets, example_labels = [], []
        for pid in post_ids:
            rows = [by_key.get((pid, c)) for c in CRITERIA]
            example_labels.append([float(r.label) if r is not None else 0.0 for r in rows])
            targets.append(
                [
                    span_target(r.label, r.evidence_start, r.evidence_end) if r else None
                    for r in rows
                ]
            )

    return _assemble(
        encoded,
        input_format=input_format,
        max_length=max_length,
        stride=stride,
        post_segment=post_segment,
        example_posts=example_posts,
        example_criteria=example_criteria,
        example_labels=example_labels,
        targets=targets,
        sentence_starts=sentence_starts,
        gold_sentences=gold_sentences,
        pairs=pairs,
        texts=texts,
        sentence_spans=sentence_spans,
    )


def _check_room(tokenizer: Any, firsts: Sequence[str] | None, max_length: int, stride: int) -> None:
    """HF overflow needs stride < post tokens per window; say so in our words, naming stride."""
    longest_first = 0
    if firsts:
        longest_first = max(
            len(tokenizer(f, add_special_tokens=False)["input_ids"]) for f in set(firsts)
        )
    room = max_length - longest_first - tokenizer.num_special_tokens_to_add(pair=bool(firsts))
    if stride >= room:
        raise ValueError(
            f"stride: {stride} leaves no room for the post in max_length {max_length} "
            f"(only {room} post tokens per window); lower stride or raise max_length"
        )


def _assemble(
    encoded: Any,
    *,
    input_format: InputFormat,
    max_length: int,
    stride: int,
    post_segment: int,
    example_posts: list[str],
    example_criteria: list[str | None],
    example_labels: list[list[float]],
    targets: list[list[CharTarget]],
    sentence_starts: dict[str, list[int]],
    gold_sentences: dict[tuple[str, str], set[int] | None],
    pairs: pd.DataFrame,
    texts: dict[str, str],
    sentence_spans: dict[str, list[tuple[int, int]]],
) -> WindowFeatures:
    has_types = "token_type_ids" in encoded
    input_ids, type_ids, contexts, offsets_all, sentence_all = [], [], [], [], []
    labels, criterion_ids, starts, ends, sentence_targets = [], [], [], [], []
    sentence_evidence: list[np.ndarray] = []
    window_posts: list[str] = []
    first_sentences: list[int] = []
    window_criteria: list[str | None] = []
    for window, example in enumerate(encoded["overflow_to_sample_mapping"]):
        sequence = encoded.sequence_ids(window)
        context = np.array([s == post_segment for s in sequence], dtype=bool)
        offsets = np.asarray(encoded["offset_mapping"][window], dtype=np.int32).reshape(-1, 2)
        offsets[~context] = -1
        post_id = example_posts[example]
        sentence_ids, first_sentence = token_sentence_ids(
            offsets, context, sentence_starts[post_id]
        )
        window_starts, window_ends, window_sentences = [], [], []
        for target in targets[example]:
            token_span = token_target(target, offsets, context)
            window_starts.append(token_span[0])
            window_ends.append(token_span[1])
            window_sentences.append(sentence_target(target, token_span, sentence_ids))
        criterion = example_criteria[example]
        sentence_evidence.append(
            sentence_evidence_target(
                post_id,
                CRITERIA if criterion is None else (criterion,),
                sentence_ids,
                first_sentence,
                gold_sentences,
            )
        )
        input_ids.append(np.asarray(encoded["input_ids"][window], dtype=np.int32))
        if has_types:
            type_ids.append(np.asarray(encoded["token_type_ids"][window], dtype=np.int8))
        contexts.append(context)
        offsets_all.append(offsets)
        sentence_all.append(sentence_ids.astype(np.int32))
        labels.append(example_labels[example])
        criterion_ids.append(
            [CRITERION_INDEX[criterion]] if criterion is not None else list(range(len(CRITERIA)))
        )
        starts.append(window_starts)
        ends.append(window_ends)
        sentence_targets.append(window_sentences)
        window_posts.append(post_id)
        first_sentences.append(first_sentence)
        window_criteria.append(criterion)
    num_labels = 1 if input_format == "binary_pairs" else len(CRITERIA)

    def matrix(rows: list[Any], dtype: Any) -> np.ndarray:
        return np.asarray(rows, dtype=dtype).reshape(len(rows), num_labels)

    return WindowFeatures(
        input_format=input_format,
        max_length=max_length,
        stride=stride,
        input_ids=input_ids,
        token_type_ids=type_ids if has_types else None,
        context_mask=contexts,
        offsets=offsets_all,
        sentence_ids=sentence_all,
        labels=matrix(labels, np.float32),
        criterion_ids=matrix(criterion_ids, np.int64),
        start_positions=matrix(starts, np.int64),
        end_positions=matrix(ends, np.int64),
        sentence_targets=matrix(sentence_targets, np.int64),
        window_post_ids=window_posts,
        window_criterion=window_criteria,
        window_first_sentence=first_sentences,
        pairs=pairs,
        texts=texts,
        sentence_evidence=sentence_evidence,
        sentence_spans=sentence_spans,
    )
