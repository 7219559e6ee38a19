"""The feature cache never hands one tokenizer's features to another, even when Python reuses
the first tokenizer's id for the second after garbage collection."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from mental_health_hpo.training.features import FeatureCache
from tests.training.test_features import model_input

TABLE = model_input(
    {
        "p1": ("I feel dysthymic and anhedonic most days.", {"ANHEDONIA": None}),
        "p2": ("Insomnia again. Dysthymic all week.", {"SLEEP_ISSUES": "Insomnia again."}),
    }
)
KWARGS: dict[str, Any] = {"input_format": "multi_label", "max_length": 48, "stride": 8}


class Handle:
    """A small object standing for a tokenizer (as a trial's model holds one): small objects
    are where CPython reuses a freed id at once."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._tokenizer(*args, **kwargs)

    def __len__(self) -> int:
        return len(self._tokenizer)


def _split_word(tokenizer: Any) -> str:
    """A word of the table that the tokenizer splits into pieces."""
    for word in " ".join(TABLE["text"]).split():
        word = word.strip(".,!?").lower()
        if word.isalpha() and len(tokenizer.tokenize(word)) > 1:
            return word
    raise AssertionError("no multi-piece word in the table")


def _recycled_handle(cache: FeatureCache, plain: Any, extended: Any) -> tuple[Any, list[Any]]:
    """A handle of ``extended`` that has the id of a dead handle of ``plain`` whose features
    ``cache`` holds, and those features; None when CPython did not reuse the id this time.

    Another thread (pytest-xdist's channel, say) may take the freed block first, so a caller
    tries again with a fresh pair."""
    first = Handle(plain)
    first_ids = [list(a) for a in cache.get(TABLE, first, **KWARGS).input_ids]
    old_id = id(first)
    del first
    gc.collect()
    alive = []  # hold every miss, so each new handle takes another free block
    second = Handle(extended)
    while id(second) != old_id and len(alive) < 2_000:
        alive.append(second)
        second = Handle(extended)
    return (second if id(second) == old_id else None), first_ids


def test_a_recycled_tokenizer_id_gets_its_own_features(tiny_model_dir: Path) -> None:
    plain = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    extended = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    extended.add_tokens([_split_word(plain)])  # another vocabulary: other ids for that word
    for _ in range(50):
        cache = FeatureCache()
        second, first_ids = _recycled_handle(cache, plain, extended)
        if second is not None:
            break
    else:
        pytest.fail("CPython reused no freed id in 50 tries: the case cannot be set up here")
    # The id is recycled: the case that used to go wrong.
    features = cache.get(TABLE, second, **KWARGS)
    assert [list(a) for a in features.input_ids] != first_ids
    rebuilt = FeatureCache().get(TABLE, extended, **KWARGS)
    assert [list(a) for a in features.input_ids] == [list(a) for a in rebuilt.input_ids]
    assert cache.misses == 2 and cache.hits == 0


def test_tokens_added_to_the_same_object_change_its_key(tiny_model_dir: Path) -> None:
    cache = FeatureCache()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    before = cache.key(TABLE, tokenizer, **KWARGS)
    tokenizer.add_tokens([_split_word(tokenizer)])
    assert cache.key(TABLE, tokenizer, **KWARGS) != before
