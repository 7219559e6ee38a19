"""The encoder's parameter count, read without loading weights: folder, HF cache, unknown."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mental_health_hpo.model.encoder_size import encoder_size, safetensors_parameter_count


def _count_by_loading(folder: Path) -> int:
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(folder))
    return sum(parameter.numel() for parameter in model.parameters())


def test_the_packaged_minilm_is_sized_from_its_own_folder() -> None:
    from mental_health_hpo.model.encoder import packaged_minilm_path

    size = encoder_size("packaged:all-minilm-l6-v2")
    # the file also holds buffers (position_ids: 512 values), which checkpoints store too
    assert size.n_params == pytest.approx(_count_by_loading(packaged_minilm_path()), rel=1e-3)
    assert size.source.startswith("folder ")


def test_a_cached_hub_encoder_is_sized_from_its_safetensors_header(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (tiny_model_dir / "model.safetensors").is_file()
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--someone--tiny-bert"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)

    size = encoder_size("someone/tiny-bert")
    assert size.n_params == pytest.approx(_count_by_loading(tiny_model_dir), rel=1e-2)
    assert size.n_params == safetensors_parameter_count(tiny_model_dir / "model.safetensors")
    assert "safetensors header in the HF cache" in size.source
    # config.json alone (weights not cached) gives the same count, built on the meta device
    (repo / "snapshots" / commit / "model.safetensors").unlink()
    from_config = encoder_size("someone/tiny-bert")
    assert from_config.n_params == _count_by_loading(tiny_model_dir)  # parameters only
    assert "config.json" in from_config.source


def test_an_uncached_id_offline_is_unknown_never_another_models_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    size = encoder_size("org/not-cached", cache_dir=str(tmp_path))
    assert size.n_params is None and not size.known
    assert "HF_HUB_OFFLINE=1" in size.source and "hf download org/not-cached" in size.source
