"""The pending-run registry survives processes and keeps updates that changed while applied."""

from __future__ import annotations

from pathlib import Path

from mental_health_hpo.tracking.pending import PendingRun, PendingRuns, is_pending


def test_references_resolve_in_any_process_and_updates_merge(tmp_path: Path) -> None:
    path = tmp_path / "study" / "mlflow_pending_runs.json"
    first = PendingRuns(path)
    ref = first.reserve(PendingRun("1", "trial_0003", {"study_id": "s"}, {"a": "1"}, "p", 5))
    assert is_pending(ref) and not is_pending("0123abcd") and not is_pending(None)
    first.defer(ref, tags={"state": "running"})
    first.defer(ref, tags={"state": "completed"}, status="FINISHED", end_time_ms=9)

    later = PendingRuns(path)  # the next kedro run
    assert [r for r, _ in later.runs_to_create()] == [ref] and later.resolve(ref) is None
    later.attempting(ref)
    later.created(ref, "run-1")
    assert first.resolve(ref) == "run-1" and later.runs_to_create() == []
    [(target, update)] = later.updates()
    assert (target, update.tags, update.status) == (ref, {"state": "completed"}, "FINISHED")
    first.defer(ref, tags={"extra": "x"})  # changed after it was read: not dropped
    later.applied(ref, update)
    assert [u.tags for _, u in later.updates()] == [{"state": "completed", "extra": "x"}]
    later.applied(ref, later.updates()[0][1])
    assert later.updates() == []
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]


def test_a_run_created_at_the_first_try_leaves_nothing_behind(tmp_path: Path) -> None:
    registry = PendingRuns(tmp_path / "mlflow_pending_runs.json")
    ref = registry.reserve(PendingRun("1", "trial_0000", {}, {}, None, 0))
    registry.created(ref, "run-0")
    registry.forget(ref)
    assert not registry.path.exists()
