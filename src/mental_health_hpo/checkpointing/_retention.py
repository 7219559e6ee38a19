"""Pure retention rules: given committed records and a policy, which to keep, demote or delete.

Invariants (checked by property tests): the newest full checkpoint is never deleted or demoted,
a best or co-best checkpoint is never deleted, and every record lands in exactly one bucket.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mental_health_hpo.checkpointing._errors import PolicyError
from mental_health_hpo.checkpointing._manifest import (
    FLAG_BEST,
    FLAG_CO_BEST,
    FLAG_LAST,
    KIND_WEIGHTS,
    CheckpointRecord,
)
from mental_health_hpo.workspace.layout import STATE_FILE


@dataclass(frozen=True)
class RetentionPlan:
    """What to do with each record. ``demote`` ids are kept, weights-only."""

    keep_full: tuple[str, ...] = ()
    keep_weights: tuple[str, ...] = ()
    demote: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    flags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    bytes_after: int = 0
    over_budget: bool = False

    @property
    def kept(self) -> tuple[str, ...]:
        return self.keep_full + self.keep_weights

    @property
    def changes_anything(self) -> bool:
        return bool(self.demote or self.delete)


def _order(records: Sequence[CheckpointRecord]) -> list[CheckpointRecord]:
    return sorted(records, key=lambda r: (r.step, r.epoch, r.id))


def best_records(records: Sequence[CheckpointRecord], metric_name: str) -> list[CheckpointRecord]:
    """All records sharing the maximal metric value (co-best ties), oldest first."""
    values = [r.metric(metric_name) for r in records]
    if not values or max(values) == float("-inf"):
        return []
    top = max(values)
    return [r for r in _order(records) if r.metric(metric_name) == top]


def _chosen_best(
    records: Sequence[CheckpointRecord], policy: RetentionPolicy, metric_name: str
) -> list[CheckpointRecord]:
    cobest = best_records(records, metric_name)
    ranked = sorted(
        (r for r in records if r.metric(metric_name) > float("-inf")),
        key=lambda r: (-r.metric(metric_name), r.step, r.id),
    )
    if not ranked:
        return []
    cap = max(policy.keep_best_k_max, len(cobest))
    chosen = list(cobest)
    boundary = ranked[min(policy.keep_best_k, len(ranked)) - 1].metric(metric_name)
    for record in ranked:
        if len(chosen) >= cap:
            break
        if record in chosen:
            continue
        within_k = len(chosen) < policy.keep_best_k
        boundary_tie = record.metric(metric_name) == boundary
        if within_k or boundary_tie:
            chosen.append(record)
    return chosen


def _weights_size(record: CheckpointRecord) -> int:
    return sum(e.size for name, e in record.files.items() if name != STATE_FILE)


def plan_retention(
    records: Sequence[CheckpointRecord], policy: RetentionPolicy, metric_name: str
) -> RetentionPlan:
    """Decide retention for one trial's committed records (the new one included)."""
    if not records:
        return RetentionPlan()
    ordered = _order(records)
    latest = ordered[-1]
    full = [r for r in reversed(ordered) if r.is_full]
    newest_full = full[0] if full else None
    last_n = full[: max(policy.keep_last_n, 1 if full else 0)]
    chosen = _chosen_best(records, policy, metric_name)
    cobest = best_records(records, metric_name)

    keep_full: list[CheckpointRecord] = []
    keep_weights: list[CheckpointRecord] = []
    for record in ordered:
        if record in last_n:
            keep_full.append(record)
        elif record in chosen or record is latest:
            keep_weights.append(record)

    def size_now() -> int:
        return sum(r.size for r in keep_full) + sum(_weights_size(r) for r in keep_weights)

    # Byte cap: shed unprotected copies, oldest resume states first, then the weakest bests.
    for record in [r for r in reversed(last_n) if r is not newest_full]:
        if size_now() <= policy.max_total_size:
            break
        keep_full.remove(record)
        if record in chosen:
            keep_weights.append(record)
    for record in reversed(chosen):
        if size_now() <= policy.max_total_size:
            break
        if record in cobest or record is latest or record not in keep_weights:
            continue
        keep_weights.remove(record)

    keep_ids = {r.id for r in keep_full} | {r.id for r in keep_weights}
    flags: dict[str, tuple[str, ...]] = {}
    for record in ordered:
        if record.id not in keep_ids:
            continue
        marks = []
        if record is latest:
            marks.append(FLAG_LAST)
        if record in cobest:
            marks.append(FLAG_BEST)
            if len(cobest) > 1:
                marks.append(FLAG_CO_BEST)
        flags[record.id] = tuple(marks)
    return RetentionPlan(
        keep_full=tuple(r.id for r in keep_full),
        keep_weights=tuple(r.id for r in keep_weights),
        demote=tuple(r.id for r in keep_weights if r.is_full),
        delete=tuple(r.id for r in ordered if r.id not in keep_ids),
        flags=flags,
        bytes_after=size_now(),
        over_budget=size_now() > policy.max_total_size,
    )


def plan_emergency(records: Sequence[CheckpointRecord], metric_name: str) -> RetentionPlan:
    """Disk-pressure step 1: drop every unprotected checkpoint (keep newest full, best, co-best)."""
    strict = RetentionPolicy(keep_last_n=0, keep_best_k=1, keep_best_k_max=1, emergency=True)
    return plan_retention(records, strict, metric_name)


def apply_plan(records: Sequence[CheckpointRecord], plan: RetentionPlan) -> list[CheckpointRecord]:
    """The records a manifest holds after ``plan``: flags set, demoted ones weights-only."""
    result = []
    demote = set(plan.demote)
    for record in _order(records):
        if record.id not in plan.kept:
            continue
        files = dict(record.files)
        kind = record.kind
        if record.id in demote:
            files.pop(STATE_FILE, None)
            kind = KIND_WEIGHTS
        result.append(
            dataclasses.replace(
                record, files=files, kind=kind, flags=list(plan.flags.get(record.id, ()))
            )
        )
    return result


# Retention policy: how many checkpoints a trial and a study keep, and the disk limits.
OVERHEAD_BYTES = 1024 * 1024  # manifest, safetensors header, pickle framing
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

    @classmethod
    def load(
        cls, name_or_path: str | Path = "default", overrides: dict[str, Any] | None = None
    ) -> RetentionPolicy:
        """A named policy (default, aggressive, minimal, permissive) or a YAML file, plus
        overrides."""
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

    def study_peak_bytes(self, n_params: int) -> int:
        """Peak disk of a study of a float32 model of ``n_params`` under this policy.

        For the environment check before a study starts: the kept best trials plus the one
        running now, each with its retained full checkpoints (weights and AdamW's two moments)
        and best weights; capped by ``max_total_size``.
        """
        weights_bytes = n_params * 4
        full = weights_bytes + OVERHEAD_BYTES + 2 * weights_bytes
        per_trial = estimate_retained_bytes(full, weights_bytes, self)
        return min(per_trial * (self.keep_best_trials + 1), max(self.max_total_size, per_trial))


def estimate_retained_bytes(full_bytes: int, weights_bytes: int, policy: RetentionPolicy) -> int:
    """Peak bytes one trial needs: retained full + best copies + the new one before pruning."""
    full_kept = max(policy.keep_last_n, 1) + 1
    return full_kept * full_bytes + policy.keep_best_k_max * weights_bytes


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
