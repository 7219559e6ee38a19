"""Tokenized, windowed features from a ``model_input`` table, for either input format.

- ``binary_pairs``: one example per (post, criterion): [CLS] criterion description [SEP] post
  [SEP] (``truncation="only_second"``), one label, one span.
- ``multi_label``: one example per post: [CLS] post [SEP], nine labels, one span per criterion.

Each example becomes one or more windows (the tokenizer's overflow with ``stride``). Per window
and label the span target is the token span of the primary evidence when it lies wholly inside
the window, else the null position 0; positive pairs whose evidence could not be aligned get
``IGNORE_INDEX`` (no span loss).

Sentence-level evidence (the default formulation, as ReDSM5 annotates it): each pair's gold
spans become the post sentences they cover (``data.alignment.sentences_covered``), and each
window gets a (labels, window sentences) 0/1 target of "this sentence is evidence for this
criterion"; a positive pair whose evidence could not be aligned gets ``IGNORE_INDEX`` for every
sentence (unknown, never guessed as "none"). ``FeatureCache`` tokenizes once per
tokenizer/settings/data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mental_health_hpo.checkpointing.atomic import atomic_write_file, make_dir_durable
from mental_health_hpo.constants import CRITERIA, CRITERION_DESCRIPTIONS
from mental_health_hpo.data.alignment import sentences_covered, split_sentences
from mental_health_hpo.model.config import InputFormat, ModelConfig
from mental_health_hpo.model.losses import IGNORE_INDEX
from mental_health_hpo.training.windows import char_span_to_tokens, token_sentence_ids

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("post_id", "text", "criterion", "label", "evidence_start", "evidence_end")
FEATURES_VERSION = 2  # bump when the feature layout changes: invalidates on-disk caches
CRITERION_INDEX = {name: i for i, name in enumerate(CRITERIA)}


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


def _pairs_table(
    table: pd.DataFrame, sentence_spans: dict[str, list[tuple[int, int]]]
) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"model_input table lacks columns {missing}")
    unknown = sorted(set(table["criterion"]) - set(CRITERIA))
    if unknown:
        raise ValueError(f"criterion: unknown values {unknown}")
    pairs = table.reset_index(drop=True)
    pairs = pairs.assign(
        post_id=pairs["post_id"].astype(str),
        label=pairs["label"].astype(int),
        evidence_start=pairs["evidence_start"].astype(int),
        evidence_end=pairs["evidence_end"].astype(int),
    )
    if "alignment" not in pairs.columns:
        pairs["alignment"] = np.where(pairs["label"] == 1, "exact", "none")
    pairs["gold_spans"] = [_gold_spans(row) for row in pairs.itertuples(index=False)]
    pairs["gold_sentences"] = [
        sentences_covered(sentence_spans[post_id], spans)
        for post_id, spans in zip(pairs["post_id"], pairs["gold_spans"], strict=True)
    ]
    columns = ["post_id", "criterion", "label", "alignment", "evidence_start", "evidence_end"]
    return pairs[[*columns, "gold_spans", "gold_sentences"]]


def _gold_spans(row: Any) -> list[list[int]]:
    spans = getattr(row, "evidence_spans", None)
    if spans is not None and len(spans) > 0:
        return [[int(s), int(e)] for s, e in spans if 0 <= int(s) < int(e)]
    if int(row.evidence_start) >= 0 and int(row.evidence_end) > int(row.evidence_start):
        return [[int(row.evidence_start), int(row.evidence_end)]]
    return []


def _span_target(label: int, start: int, end: int) -> tuple[int, int] | None:
    """(start, end) chars of the target, None for no evidence, (-1, -1) to ignore."""
    if label == 1 and start < 0:
        return (-1, -1)  # positive without an aligned span: do not teach "no evidence"
    return (start, end) if start >= 0 and end > start else None


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
    pairs, texts, sentence_spans = gold_evidence_table(table)
    post_ids = list(dict.fromkeys(pairs["post_id"]))
    sentence_starts = {pid: [s for s, _ in sentence_spans[pid]] for pid in post_ids}
    gold_sentences = _gold_sentence_sets(pairs)

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
            [_span_target(r.label, r.evidence_start, r.evidence_end)]
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
                    _span_target(r.label, r.evidence_start, r.evidence_end) if r else None
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


def gold_evidence_table(
    table: pd.DataFrame,
) -> tuple[pd.DataFrame, dict[str, str], dict[str, list[tuple[int, int]]]]:
    """The gold of a ``model_input`` table as the model sees it: (pairs, texts, sentence spans).

    ``pairs`` has one row per (post, criterion) with ``gold_spans`` and ``gold_sentences``;
    baselines use it so they are trained and scored on exactly the model's targets.
    """
    texts = dict(zip(table["post_id"].astype(str), table["text"].astype(str), strict=True))
    sentence_spans = {pid: split_sentences(text) for pid, text in texts.items()}
    return _pairs_table(table, sentence_spans), texts, sentence_spans


def _gold_sentence_sets(pairs: pd.DataFrame) -> dict[tuple[str, str], set[int] | None]:
    """(post, criterion) -> gold evidence sentence ids; None for an unaligned positive."""
    gold: dict[tuple[str, str], set[int] | None] = {}
    for row in pairs.itertuples(index=False):
        unknown = int(row.label) == 1 and not row.gold_sentences
        gold[(row.post_id, row.criterion)] = None if unknown else set(row.gold_sentences)
    return gold


def _sentence_evidence_target(
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
    targets: list[list[tuple[int, int] | None]],
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
            token_span = _token_target(target, offsets, context)
            window_starts.append(token_span[0])
            window_ends.append(token_span[1])
            window_sentences.append(_sentence_target(target, token_span, sentence_ids))
        criterion = example_criteria[example]
        sentence_evidence.append(
            _sentence_evidence_target(
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


def _token_target(
    target: tuple[int, int] | None, offsets: np.ndarray, context: np.ndarray
) -> tuple[int, int]:
    if target is None:
        return (0, 0)
    if target == (-1, -1):
        return (IGNORE_INDEX, IGNORE_INDEX)
    span = char_span_to_tokens(offsets, context, *target)
    return span if span is not None else (0, 0)


def _sentence_target(
    target: tuple[int, int] | None, token_span: tuple[int, int], sentence_ids: np.ndarray
) -> int:
    if target == (-1, -1):
        return IGNORE_INDEX
    if token_span[0] <= 0:
        return 0
    return int(sentence_ids[token_span[0]]) + 1


# --------------------------------------------------------------------------- caching


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Class, name/path and vocabulary hash: two tokenizers with equal fingerprints agree."""
    vocab = sorted(tokenizer.get_vocab().items())
    digest = hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode("utf-8"))
    digest.update(type(tokenizer).__name__.encode())
    digest.update(str(getattr(tokenizer, "do_lower_case", "")).encode())
    return f"{getattr(tokenizer, 'name_or_path', '')}|{digest.hexdigest()[:16]}"


def table_fingerprint(table: pd.DataFrame) -> str:
    """Content hash of the columns the features depend on."""
    columns = [c for c in (*REQUIRED_COLUMNS, "alignment", "evidence_spans") if c in table.columns]
    frame = table[columns].astype(str).reset_index(drop=True)
    hashed = pd.util.hash_pandas_object(frame, index=True).to_numpy()
    return hashlib.sha256(hashed.tobytes() + ",".join(columns).encode()).hexdigest()[:16]


class FeatureCache:
    """Tokenize once, reuse across trials sharing a tokenizer and window settings.

    Key: tokenizer fingerprint + max_length + stride + input_format + table fingerprint (+ the
    feature layout version). Kept in memory (``max_entries``, least recently used dropped) and,
    with ``directory``, pickled to ``directory/features-<key>.pkl`` (written atomically; only
    load caches this project wrote: pickle runs code).
    """

    def __init__(self, directory: str | Path | None = None, max_entries: int = 8) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.max_entries = max_entries
        self._memory: dict[str, WindowFeatures] = {}
        # Fingerprints are memoised per live tokenizer object, never per id(): ids are reused
        # after garbage collection, and a reused id would hand one tokenizer's features to
        # another (with ``model.encoder`` in the search space, silently wrong token ids).
        self._tokenizer_keys: weakref.WeakKeyDictionary[Any, tuple[int, str]] = (
            weakref.WeakKeyDictionary()
        )
        self.hits = 0
        self.misses = 0

    def key(
        self,
        table: pd.DataFrame,
        tokenizer: Any,
        *,
        input_format: str,
        max_length: int,
        stride: int,
    ) -> str:
        tokenizer_key = self._tokenizer_key(tokenizer)
        parts = [
            tokenizer_key,
            str(max_length),
            str(stride),
            input_format,
            table_fingerprint(table),
            str(FEATURES_VERSION),
        ]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]

    def _tokenizer_key(self, tokenizer: Any) -> str:
        size = len(tokenizer)  # added tokens change the vocabulary of the same object
        try:
            memo = self._tokenizer_keys.get(tokenizer)
        except TypeError:  # not weak-referenceable: fingerprint every time
            return tokenizer_fingerprint(tokenizer)
        if memo is None or memo[0] != size:
            memo = (size, tokenizer_fingerprint(tokenizer))
            self._tokenizer_keys[tokenizer] = memo
        return memo[1]

    def get(
        self,
        table: pd.DataFrame,
        tokenizer: Any,
        *,
        input_format: InputFormat,
        max_length: int,
        stride: int,
    ) -> WindowFeatures:
        """Features for ``table``: from memory, then disk, else built (and stored in both)."""
        key = self.key(
            table, tokenizer, input_format=input_format, max_length=max_length, stride=stride
        )
        if key in self._memory:
            self.hits += 1
            self._memory[key] = self._memory.pop(key)  # most recently used last
            return self._memory[key]
        features = self._read_disk(key)
        if features is not None:
            self.hits += 1
        else:
            self.misses += 1
            features = build_features(
                table, tokenizer, input_format=input_format, max_length=max_length, stride=stride
            )
            features.metadata["cache_key"] = key
            self._write_disk(key, features)
        self._remember(key, features)
        return features

    def get_for_config(
        self, table: pd.DataFrame, tokenizer: Any, config: ModelConfig
    ) -> WindowFeatures:
        """``get`` with the input format, max_length and stride of ``config``."""
        return self.get(
            table,
            tokenizer,
            input_format=config.input_format,
            max_length=config.max_length,
            stride=config.stride,
        )

    def clear(self) -> None:
        """Forget the in-memory entries (disk files stay)."""
        self._memory.clear()

    def _remember(self, key: str, features: WindowFeatures) -> None:
        self._memory[key] = features
        while len(self._memory) > self.max_entries:
            self._memory.pop(next(iter(self._memory)))

    def _path(self, key: str) -> Path | None:
        return self.directory / f"features-{key}.pkl" if self.directory is not None else None

    def _read_disk(self, key: str) -> WindowFeatures | None:
        path = self._path(key)
        if path is None or not path.exists():
            return None
        try:
            with path.open("rb") as handle:
                features = pickle.load(handle)
        except Exception as error:  # a torn or stale file is rebuilt, never fatal
            logger.warning("ignoring unreadable feature cache %s: %s", path, error)
            return None
        return features if isinstance(features, WindowFeatures) else None

    def _write_disk(self, key: str, features: WindowFeatures) -> None:
        path = self._path(key)
        if path is None:
            return
        make_dir_durable(path.parent)
        atomic_write_file(
            path, lambda handle: pickle.dump(features, handle, protocol=pickle.HIGHEST_PROTOCOL)
        )
