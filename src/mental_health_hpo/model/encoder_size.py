"""How many parameters the configured encoder has, without downloading or loading its weights.

Why: the disk check of ``validate_env`` sizes a study's checkpoints from the encoder's parameter
count, so a wrong count (another model's) lets a study fill the disk it was meant to protect.
The count comes, in this order, from a local folder (the packaged MiniLM or a path), the local
Hugging Face cache (a safetensors header, else ``config.json`` built on the meta device), the
hub's safetensors metadata when online; otherwise it is unknown, and :class:`EncoderSize` says
how to find out.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from mental_health_hpo.model.encoder import hf_cache_dir, resolve_local_path

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
CONFIG = "config.json"


@dataclass(frozen=True)
class EncoderSize:
    """``n_params`` (None when unknown), where it was read, and how to check it when unknown."""

    encoder: str
    n_params: int | None
    source: str

    @property
    def known(self) -> bool:
        return self.n_params is not None


def safetensors_parameter_count(path: Path) -> int:
    """Sum of the tensors' element counts in a safetensors file's header (no weights read)."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    count = 0
    for name, entry in header.items():
        if name != "__metadata__":
            numel = 1
            for dim in entry["shape"]:
                numel *= int(dim)
            count += numel
    return count


def config_parameter_count(config_file: Path) -> int:
    """Parameters of the model ``config.json`` describes, built on the meta device (no memory).

    Why not a formula: encoders differ (BERT, DistilBERT, RoBERTa, DeBERTa...), and
    transformers' own ``AutoModel.from_config`` knows every one of them.
    """
    import torch
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(str(config_file.parent))
    with torch.device("meta"):
        model = AutoModel.from_config(config)  # type: ignore[no-untyped-call]
    return sum(parameter.numel() for parameter in model.parameters())


def folder_parameter_count(folder: Path) -> int:
    """Parameters of a saved encoder folder: its safetensors header(s), else its config.json."""
    if (folder / SAFETENSORS).is_file():
        return safetensors_parameter_count(folder / SAFETENSORS)
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        if all((folder / shard).is_file() for shard in shards):
            return sum(safetensors_parameter_count(folder / shard) for shard in shards)
    return config_parameter_count(folder / CONFIG)


def _cached(repo_id: str, filename: str, revision: str | None, cache: Path) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=str(cache), revision=revision)
    return Path(found) if isinstance(found, str) else None


def _from_cache(repo_id: str, revision: str | None, cache: Path) -> EncoderSize | None:
    weights = _cached(repo_id, SAFETENSORS, revision, cache)
    if weights is not None:
        count = safetensors_parameter_count(weights)
        return EncoderSize(repo_id, count, f"safetensors header in the HF cache ({weights})")
    config = _cached(repo_id, CONFIG, revision, cache)
    if config is not None:
        return EncoderSize(repo_id, config_parameter_count(config), f"config.json in {cache}")
    return None


def _from_hub(repo_id: str, revision: str | None, token: str | None) -> EncoderSize:
    from huggingface_hub import HfApi

    metadata = HfApi().get_safetensors_metadata(repo_id, revision=revision, token=token)
    count = sum(metadata.parameter_count.values())
    return EncoderSize(repo_id, count, "the hub's safetensors metadata")


def encoder_size(
    encoder: str,
    *,
    revision: str | None = None,
    cache_dir: str | None = None,
    token: str | None = None,
) -> EncoderSize:
    """The parameter count of ``encoder`` (sentinel, folder or hub id), or why it is unknown."""
    folder = resolve_local_path(encoder)
    if folder is not None:
        return EncoderSize(encoder, folder_parameter_count(folder), f"folder {folder}")
    cache = hf_cache_dir(cache_dir)
    cached = _from_cache(encoder, revision, cache)
    if cached is not None:
        return cached
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        try:
            return _from_hub(encoder, revision, token)
        except Exception as error:  # unreachable, gated, not safetensors: say so below
            reason = f"the hub's metadata failed ({type(error).__name__})"
    else:
        reason = "HF_HUB_OFFLINE=1"
    return EncoderSize(
        encoder,
        None,
        f"unknown: {encoder} is not in the HF cache at {cache} and {reason}; check it with "
        f"`hf download {encoder} config.json` (a few KB, then re-run) or, online, "
        f'`python -c "from huggingface_hub import get_safetensors_metadata as m; '
        f"print(sum(m('{encoder}').parameter_count.values()))\"`",
    )
