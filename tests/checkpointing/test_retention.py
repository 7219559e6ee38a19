"""Retention rules: last-n, best-k, co-best ties beyond the cap, byte cap, never the protected."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mental_health_hpo.checkpointing._manifest import (
    KIND_FULL,
    STATE_FILE,
    WEIGHTS_FILE,
    CheckpointRecord,
    FileEntry,
)
from mental_health_hpo.checkpointing._retention import (
    RetentionPolicy,
    apply_plan,
    plan_emergency,
    plan_retention,
)


def rec(i: int, value: float | None, size: int = 100, full: bool = True) -> CheckpointRecord:
    files = {WEIGHTS_FILE: FileEntry(f"c{i}/{WEIGHTS_FILE}", "x", size)}
    if full:
        files[STATE_FILE] = FileEntry(f"c{i}/{STATE_FILE}", "y", 2 * size)
    metrics = {} if value is None else {"m": value}
    return CheckpointRecord(f"c{i:03d}", i, i * 10, metrics, KIND_FULL, files, "t")


def test_default_keeps_latest_full_and_best_weights_only() -> None:
    records = [rec(0, 0.1), rec(1, 0.9), rec(2, 0.5), rec(3, 0.4)]
    plan = plan_retention(records, RetentionPolicy(), "m")
    assert plan.keep_full == ("c003",)
    assert plan.keep_weights == ("c001",)
    assert plan.demote == ("c001",)
    assert set(plan.delete) == {"c000", "c002"}
    assert plan.flags == {"c001": ("best",), "c003": ("last",)}
    after = apply_plan(records, plan)
    assert [r.id for r in after] == ["c001", "c003"]
    assert after[0].kind == "weights" and STATE_FILE not in after[0].files


def test_best_that_is_latest_stays_full_with_both_flags() -> None:
    plan = plan_retention([rec(0, 0.1), rec(1, 0.9)], RetentionPolicy(), "m")
    assert plan.keep_full == ("c001",) and plan.delete == ("c000",)
    assert plan.flags["c001"] == ("last", "best")


def test_co_best_ties_are_kept_beyond_the_cap() -> None:
    records = [rec(i, 0.7) for i in range(4)] + [rec(4, 0.2)]
    plan = plan_retention(records, RetentionPolicy(keep_best_k=1, keep_best_k_max=2), "m")
    assert set(plan.kept) == {"c000", "c001", "c002", "c003", "c004"}
    for i in range(4):
        assert plan.flags[f"c{i:03d}"] == ("best", "co_best")


def test_boundary_ties_fill_up_to_the_cap_only() -> None:
    records = [rec(0, 0.9), rec(1, 0.5), rec(2, 0.5), rec(3, 0.5), rec(4, 0.1)]
    plan = plan_retention(records, RetentionPolicy(keep_best_k=2, keep_best_k_max=3), "m")
    assert set(plan.keep_weights) == {"c000", "c001", "c002"}  # 0.9 + two 0.5 ties, cap 3
    assert plan.keep_full == ("c004",)


def test_keep_last_n_keeps_newest_full() -> None:
    records = [rec(i, 0.1 * i) for i in range(5)]
    plan = plan_retention(records, RetentionPolicy(keep_last_n=3), "m")
    assert plan.keep_full == ("c002", "c003", "c004")
    assert plan.delete == ("c000", "c001")


def test_missing_or_nan_metric_is_never_best() -> None:
    records = [rec(0, float("nan")), rec(1, None), rec(2, 0.3), rec(3, None)]
    plan = plan_retention(records, RetentionPolicy(), "m")
    assert plan.flags["c002"] == ("best",)
    assert "c000" in plan.delete and "c001" in plan.delete


def test_byte_cap_sheds_unprotected_first() -> None:
    records = [rec(0, 0.9), rec(1, 0.8), rec(2, 0.1), rec(3, 0.2)]
    policy = RetentionPolicy(keep_last_n=2, keep_best_k=2, keep_best_k_max=2, max_total_size=450)
    plan = plan_retention(records, policy, "m")
    # newest full (300 B) + best weights (100 B) fit; c002's resume state and c001 do not.
    assert plan.keep_full == ("c003",)
    assert set(plan.keep_weights) == {"c000"}
    assert plan.bytes_after == 400 and not plan.over_budget


def test_byte_cap_never_drops_protected() -> None:
    records = [rec(0, 0.9, size=1000), rec(1, 0.1, size=1000)]
    plan = plan_retention(records, RetentionPolicy(max_total_size=10), "m")
    assert set(plan.kept) == {"c000", "c001"} and plan.over_budget


def test_emergency_plan_keeps_only_protected() -> None:
    records = [rec(0, 0.2), rec(1, 0.9), rec(2, 0.5), rec(3, 0.1)]
    plan = plan_emergency(records, "m")
    assert plan.keep_full == ("c003",) and plan.keep_weights == ("c001",)


values = st.lists(
    st.one_of(st.sampled_from([0.1, 0.5, 0.9]), st.floats(0, 1), st.none()),
    min_size=1,
    max_size=12,
)
policies = st.builds(
    lambda last, k, extra, cap: RetentionPolicy(
        keep_last_n=last, keep_best_k=k, keep_best_k_max=k + extra, max_total_size=cap
    ),
    st.integers(1, 4),
    st.integers(1, 3),
    st.integers(0, 3),
    st.sampled_from([1, 350, 1000, 10**9]),
)


@settings(max_examples=300, deadline=None)
@given(values=values, policy=policies, weights_only=st.lists(st.booleans(), max_size=12))
def test_retention_invariants(
    values: list[float | None], policy: RetentionPolicy, weights_only: list[bool]
) -> None:
    full_flags = [not (i < len(weights_only) and weights_only[i]) for i in range(len(values))]
    records = [rec(i, v, full=full_flags[i]) for i, v in enumerate(values)]
    plan = plan_retention(records, policy, "m")
    ids = [r.id for r in records]
    # every record in exactly one bucket
    assert sorted(plan.kept + plan.delete) == sorted(ids)
    assert not set(plan.keep_full) & set(plan.keep_weights)
    # the newest full checkpoint is kept full
    fulls = [r for r in records if r.is_full]
    if fulls:
        assert fulls[-1].id in plan.keep_full
        assert fulls[-1].id not in plan.demote
    # the latest is kept, and every best/co-best is kept
    assert records[-1].id in plan.kept
    scores = [r.metric("m") for r in records]
    top = max(scores)
    if top > float("-inf"):
        cobest = {r.id for r in records if r.metric("m") == top}
        assert cobest <= set(plan.kept)
        for ckpt in cobest:
            assert "best" in plan.flags[ckpt]
            assert ("co_best" in plan.flags[ckpt]) == (len(cobest) > 1)
    # caps: at most keep_last_n full; best copies capped unless co-best ties need more
    assert len(plan.keep_full) <= policy.keep_last_n
    n_cobest = sum(1 for s in scores if s == top and top > float("-inf"))
    extra_weights = [i for i in plan.keep_weights if i != records[-1].id]
    assert len(extra_weights) <= max(policy.keep_best_k_max, n_cobest)
    # demoted ones are full records kept weights-only
    assert set(plan.demote) <= set(plan.keep_weights)
    # byte cap is respected unless only protected checkpoints remain
    if plan.over_budget:
        protected = {fulls[-1].id} if fulls else set()
        protected |= {records[-1].id}
        if top > float("-inf"):
            protected |= {r.id for r in records if r.metric("m") == top}
        assert set(plan.kept) <= protected | set(plan.keep_full)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.sampled_from([0.1, 0.5, 0.9]), min_size=1, max_size=30))
def test_retained_count_is_bounded_however_many_epochs(values: list[float]) -> None:
    """Applying the plan after each save keeps the record count bounded (plus co-best ties)."""
    policy = RetentionPolicy(keep_last_n=1, keep_best_k=1, keep_best_k_max=2)
    kept: list[CheckpointRecord] = []
    for i, value in enumerate(values):
        kept = apply_plan(
            [*kept, rec(i, value)], plan_retention([*kept, rec(i, value)], policy, "m")
        )
        top = max(r.metric("m") for r in kept)
        ties = sum(1 for r in kept if r.metric("m") == top)
        assert len(kept) <= 1 + max(2, ties)
        assert kept[-1].id == f"c{i:03d}" and kept[-1].is_full
