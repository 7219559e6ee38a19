"""``WindowFeatures``: the windows of one table as arrays, the one thing every stage shares.

Tokenization (:mod:`.tokenization`) builds it, the cache (:mod:`.cache`) pickles it, the
collator pads ``features[i]`` into batches and ``training.windows`` merges predictions back to
the pairs it holds. Kept in a module of its own, free of tokenization and decoding, so that
each of those imports it and none of them imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mental_health_hpo.constants import CRITERIA
from mental_health_hpo.model.config import InputFormat

#: Bump when the feature layout changes: invalidates on-disk caches (part of the cache key).
FEATURES_VERSION = 2


@dataclass
class WindowFeatures:
    """All windows of one table. ``features[i]`` is the dict the collator pads into a batch.

    ``pairs`` holds one row per (post, criterion) with the gold (``post_id``, ``criterion``,
    ``label``, ``alignment``, ``gold_spans`` as a list of [start, end], ``gold_sentences`` the
    post sentence ids those spans cover); ``texts`` maps post id to text; ``sentence_spans``
    maps post id to its sentences' [start, end) chars; ``window_post_ids[i]`` /
    ``window_criterion[i]`` (None for multi_label: all nine) say which pairs window i predicts;
    ``offsets[i]`` (T, 2) char offsets in the post, -1 elsewhere;
    ``sentence_ids[i]`` window-local sentence ids (``split_sentences`` of the post, -1 outside
    the post), global id = local + ``window_first_sentence[i]``; ``sentence_evidence[i]``
    (C, S_i) int8: 1 when window-local sentence s is gold evidence for label c, 0 when not,
    ``IGNORE_INDEX`` (stored as -1 in int8 and widened by the collator) when unknown.
    """

    input_format: InputFormat
    max_length: int
    stride: int
    input_ids: list[np.ndarray]  # compact dtypes (int32 / int8): the collator widens to int64
    token_type_ids: list[np.ndarray] | None
    context_mask: list[np.ndarray]
    offsets: list[np.ndarray]
    sentence_ids: list[np.ndarray]
    labels: np.ndarray  # (N, C) float32
    criterion_ids: np.ndarray  # (N, C) int64
    start_positions: np.ndarray  # (N, C) int64
    end_positions: np.ndarray  # (N, C) int64
    sentence_targets: np.ndarray  # (N, C) int64
    window_post_ids: list[str]
    window_criterion: list[str | None]
    window_first_sentence: list[int]  # global post sentence id = local id + this
    pairs: pd.DataFrame
    texts: dict[str, str]
    sentence_evidence: list[np.ndarray] = field(default_factory=list)
    sentence_spans: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {
            "window_index": index,
            "input_ids": self.input_ids[index],
            "context_mask": self.context_mask[index],
            "sentence_ids": self.sentence_ids[index],
            "labels": self.labels[index],
            "criterion_ids": self.criterion_ids[index],
            "start_positions": self.start_positions[index],
            "end_positions": self.end_positions[index],
            "sentence_targets": self.sentence_targets[index],
        }
        if self.sentence_evidence:
            item["sentence_evidence"] = self.sentence_evidence[index]
        if self.token_type_ids is not None:
            item["token_type_ids"] = self.token_type_ids[index]
        return item

    @property
    def lengths(self) -> list[int]:
        """Token count of each window, for length-grouped batching."""
        return [len(ids) for ids in self.input_ids]

    @property
    def num_labels(self) -> int:
        return int(self.labels.shape[1])

    def window_criteria(self, index: int) -> tuple[str, ...]:
        """Criteria predicted by window ``index``, in label order."""
        criterion = self.window_criterion[index]
        return CRITERIA if criterion is None else (criterion,)
