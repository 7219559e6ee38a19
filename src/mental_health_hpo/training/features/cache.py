"""``FeatureCache``: tokenize once per (tokenizer, window settings, table content), reuse it.

Why: every trial of a study tokenizes the same splits with, most often, the same tokenizer and
window settings; tokenizing is seconds to minutes per trial. The key is content-derived (a hash
of the tokenizer's vocabulary and of the table's columns the features read), never object
identity or file paths, so an equal key means equal features, across trials and processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import weakref
from pathlib import Path
from typing import Any

import pandas as pd

from mental_health_hpo.model.config import InputFormat, ModelConfig
from mental_health_hpo.training.features.gold_table import REQUIRED_COLUMNS
from mental_health_hpo.training.features.tokenization import build_features
from mental_health_hpo.training.features.window_features import FEATURES_VERSION, WindowFeatures
from mental_health_hpo.workspace.atomic import atomic_write_file, make_dir_durable

logger = logging.getLogger(__name__)


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
