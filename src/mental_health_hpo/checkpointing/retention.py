"""Pure retention rules: given committed records and a policy, which to keep, demote or delete.

Invariants (checked by property tests): the newest full checkpoint is never deleted or demoted,
a best or co-best checkpoint is never deleted, and every record lands in exactly one bucket.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from mental_health_hpo.checkpointing.layout import STATE_FILE
from mental_health_hpo.checkpointing.manifest import (
    FLAG_BEST,
    FLAG_CO_BEST,
    FLAG_LAST,
    KIND_WEIGHTS,
    CheckpointRecord,
)
from mental_health_hpo.checkpointing.policy import RetentionPolicy


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
