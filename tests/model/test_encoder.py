"""Encoder resolution: local folder, HF cache (fake layout in tmp), hub retries, final error."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from mental_health_hpo.model import (
    EncoderLoadError,
    ModelConfig,
    load_encoder,
    load_encoder_for,
    load_tokenizer,
)
from mental_health_hpo.model.encoder import hf_cache_dir, resolve_local_path


class FlakyLoader:
    """Records calls; fails the cache lookup and the first ``failures`` downloads."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, source: str, *, local_files_only: bool, **_: Any) -> tuple[str, str]:
        self.calls.append((source, local_files_only))
        if local_files_only:
            raise OSError("not cached")
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("network down")
        return "model", "tokenizer"


def test_packaged_sentinel_resolves_to_the_shipped_folder() -> None:
    path = resolve_local_path("packaged:all-minilm-l6-v2")
    assert path is not None
    assert (path / "config.json").exists()


def test_local_folder_loads_without_touching_the_hub(tiny_model_dir: Path) -> None:
    loaded = load_encoder(str(tiny_model_dir))
    assert loaded.origin == "local"
    assert loaded.model.config.hidden_size == 32
    assert loaded.tokenizer.is_fast


def test_hub_id_is_found_in_a_fake_hf_cache(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--someone--tiny-bert"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    assert hf_cache_dir() == tmp_path / "hf" / "hub"

    def never_sleep(_: float) -> None:
        raise AssertionError("a cached encoder must not retry")

    loaded = load_encoder("someone/tiny-bert", sleep=never_sleep, delays=(0.0,))
    assert loaded.origin == "cache"
    assert loaded.model.config.hidden_size == 32


def test_download_retries_with_backoff_then_succeeds() -> None:
    sleeps: list[float] = []
    loader = FlakyLoader(failures=2)
    loaded = load_encoder("org/model", loader=loader, sleep=sleeps.append)
    assert loaded.origin == "hub"
    assert sleeps == [1.0, 2.0]
    assert loader.calls[0] == ("org/model", True)  # the cache is tried first


def test_final_error_names_the_id_the_cache_and_the_manual_download(tmp_path: Path) -> None:
    sleeps: list[float] = []
    loader = FlakyLoader(failures=99)
    config = ModelConfig(encoder="org/missing-model", cache_dir=str(tmp_path), revision="v1")
    with pytest.raises(EncoderLoadError) as raised:
        load_encoder_for(config, loader=loader, sleep=sleeps.append)
    message = str(raised.value)
    assert "org/missing-model" in message
    assert str(tmp_path) in message
    assert "hf download org/missing-model --revision v1" in message
    assert sleeps == [1.0, 2.0, 4.0, 8.0]
    assert sum(not cached for _, cached in loader.calls) == 5


def test_default_config_tokenizer_is_the_packaged_minilm() -> None:
    tokenizer = load_tokenizer(ModelConfig())
    assert tokenizer.is_fast
    assert tokenizer.vocab_size == 30522


def test_token_reaches_the_loader_but_not_the_repr() -> None:
    seen: dict[str, Any] = {}

    def loader(source: str, **kwargs: Any) -> tuple[str, str]:
        seen.update(kwargs)
        return "model", "tokenizer"

    config = ModelConfig.from_params({"encoder": "org/gated", "hf_token": "hf_secret"})
    load_encoder_for(config, loader=loader)
    assert seen["token"] == "hf_secret"
    assert "hf_secret" not in repr(config)
