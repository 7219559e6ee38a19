"""Named encoder choices shipped with the package (``configs/encoders.yml``).

Why data, not code: HPO search spaces and users pick an encoder by short name; adding one is a
YAML edit.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from mental_health_hpo.model.config import ModelConfig

DEFAULT_ENCODER_NAME = "minilm"


@cache
def encoder_registry() -> dict[str, dict[str, str]]:
    """Short name -> ``{"encoder": id or sentinel, "description": ...}``."""
    text = resources.files("mental_health_hpo.model").joinpath("configs/encoders.yml").read_text()
    data: dict[str, dict[str, str]] = yaml.safe_load(text)
    return data


def encoder_names() -> tuple[str, ...]:
    """Every shipped encoder short name."""
    return tuple(encoder_registry())


def encoder_id(name: str) -> str:
    """Hub id (or the packaged sentinel) of a shipped encoder; a ``KeyError`` names the choices."""
    registry = encoder_registry()
    if name not in registry:
        raise KeyError(f"encoder: unknown name {name!r}, expected one of {sorted(registry)}")
    return registry[name]["encoder"]


def config_for_encoder(name: str, **overrides: Any) -> ModelConfig:
    """A ``ModelConfig`` for a shipped encoder name, other fields from ``overrides``."""
    return ModelConfig(encoder=encoder_id(name), **overrides)
