"""Retention policy: how many checkpoints a trial and a study keep, and the disk limits."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mental_health_hpo.checkpointing.errors import PolicyError

NAMED_POLICIES = ("default", "aggressive", "minimal", "permissive")
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_size(value: int | float | str, field_name: str = "max_total_size") -> int:
    """Bytes from an int or a string such as ``"10GB"`` or ``"512MiB"``."""
    if isinstance(value, bool):
        raise PolicyError(f"{field_name} must be a size, got {value!r}")
    if isinstance(value, int | float):
        return int(value)
    match = _SIZE_RE.match(str(value))
    unit = match.group(2).upper() if match else ""
    if not match or unit not in _UNITS:
        raise PolicyError(f"{field_name} must be a size like '10GB', got {value!r}")
    return int(float(match.group(1)) * _UNITS[unit])


@dataclass(frozen=True)
class RetentionPolicy:
    """Per-trial and per-study retention.

    ``keep_last_n`` newest full (resumable) checkpoints and ``keep_best_k`` best ones by the
    optimization metric (best ones that are not also recent are kept weights-only). Co-best ties
    are kept even beyond ``keep_best_k_max``. ``emergency`` is set only by disk-pressure handling
    and allows ``keep_last_n=0`` (the newest resumable checkpoint is still never deleted).
    """

    keep_last_n: int = 1
    keep_best_k: int = 1
    keep_best_k_max: int = 2
    max_total_size: int = 10 * 10**9
    min_interval_epochs: int = 1
    disk_space_threshold_percent: float = 10.0
    keep_best_trials: int = 3
    emergency: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_total_size", parse_size(self.max_total_size))
        ints = ("keep_last_n", "keep_best_k", "keep_best_k_max", "min_interval_epochs")
        for name in (*ints, "keep_best_trials"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise PolicyError(f"{name} must be an integer, got {value!r}")
        if self.keep_last_n < (0 if self.emergency else 1):
            raise PolicyError(f"keep_last_n must be >= 1, got {self.keep_last_n}")
        if self.keep_best_k < 1:
            raise PolicyError(f"keep_best_k must be >= 1, got {self.keep_best_k}")
        if self.keep_best_k_max < self.keep_best_k:
            raise PolicyError(
                f"keep_best_k_max must be >= keep_best_k ({self.keep_best_k}), "
                f"got {self.keep_best_k_max}"
            )
        if self.min_interval_epochs < 1:
            raise PolicyError(f"min_interval_epochs must be >= 1, got {self.min_interval_epochs}")
        if self.keep_best_trials < 1:
            raise PolicyError(f"keep_best_trials must be >= 1, got {self.keep_best_trials}")
        if self.max_total_size <= 0:
            raise PolicyError(f"max_total_size must be > 0, got {self.max_total_size}")
        pct = self.disk_space_threshold_percent
        if isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 <= pct < 100:
            raise PolicyError(f"disk_space_threshold_percent must be in [0, 100), got {pct!r}")

    def epoch_due(self, epoch: int, last_saved_epoch: int | None) -> bool:
        """Whether ``epoch`` gets a checkpoint (else its metrics are only journaled).

        The one rule the manager and the dry run both follow, so a dry run plans exactly what
        a real run writes. Due: the first save, ``min_interval_epochs`` after the last one, and
        any epoch before the last one saved (a run resumed from an earlier checkpoint replays
        epochs whose checkpoints it must write again).
        """
        if last_saved_epoch is None:
            return True
        return epoch - last_saved_epoch >= self.min_interval_epochs or epoch < last_saved_epoch

    def as_emergency(self) -> RetentionPolicy:
        """Under disk pressure: keep_best_k=1 and keep_last_n=0 for later checkpoints and trials."""
        return dataclasses.replace(
            self, keep_best_k=1, keep_best_k_max=1, keep_last_n=0, emergency=True
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def policy_from_dict(data: dict[str, Any]) -> RetentionPolicy:
    """A policy from a mapping; unknown keys are an error naming the key."""
    known = {f.name for f in fields(RetentionPolicy)} - {"emergency"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PolicyError(f"unknown retention policy field(s): {', '.join(unknown)}")
    return RetentionPolicy(**data)


def _read_named(name: str) -> dict[str, Any]:
    text = (
        resources.files("mental_health_hpo.checkpointing")
        .joinpath("policies", f"{name}.yml")
        .read_text()
    )
    return yaml.safe_load(text) or {}


def load_policy(
    name_or_path: str | Path = "default", overrides: dict[str, Any] | None = None
) -> RetentionPolicy:
    """A named policy (default, aggressive, minimal, permissive) or a YAML file, plus overrides."""
    if isinstance(name_or_path, str) and name_or_path in NAMED_POLICIES:
        data = _read_named(name_or_path)
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise PolicyError(
                f"retention policy {str(name_or_path)!r} is neither one of "
                f"{', '.join(NAMED_POLICIES)} nor a YAML file"
            )
        data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise PolicyError(f"retention policy {name_or_path!s} must be a mapping")
    return policy_from_dict({**data, **(overrides or {})})
