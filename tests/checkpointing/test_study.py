"""Study-level retention: finished trials lose resume state; only the top trials keep weights."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mental_health_hpo.checkpointing import CheckpointRef, RetentionPolicy, read_manifest
from mental_health_hpo.checkpointing._manifest import write_manifest
from mental_health_hpo.checkpointing._study import (
    apply_study_retention,
    best_of_trial,
    finish_trial,
)
from tests.checkpointing.conftest import TinyNet, save_epochs
from tests.checkpointing.support import finish, open_manager


def run_trial(study: Path, name: str, values: list[float], finished: bool = True, **kw) -> None:
    model = TinyNet()
    opt = torch.optim.AdamW(model.parameters())
    with open_manager(
        study / name / "checkpoints", metric_name="f1", async_save=False, check_disk=False, **kw
    ) as manager:
        save_epochs(manager, model, opt, values)
        if finished:
            finish(manager)


def trial_bytes(study: Path) -> int:
    return sum(p.stat().st_size for p in study.rglob("*") if p.is_file() and p.suffix != ".json")


def test_only_top_trials_keep_weights_and_running_trials_are_untouched(tmp_path: Path) -> None:
    study = tmp_path / "study_1"
    policy = RetentionPolicy(keep_best_trials=2)
    run_trial(study, "trial_run", [0.1, 0.2], finished=False, policy=policy)
    for name, best in [("trial_0", 0.5), ("trial_1", 0.9), ("trial_2", 0.7), ("trial_3", 0.6)]:
        run_trial(study, name, [0.1, best, 0.2], policy=policy)
    kept = {t.name for t in study.glob("trial_*") if read_manifest(t / "checkpoints").checkpoints}
    assert kept == {"trial_1", "trial_2", "trial_run"}
    for name in ("trial_1", "trial_2"):
        records = read_manifest(study / name / "checkpoints").checkpoints
        assert [r.kind for r in records] == ["weights"]
    running = read_manifest(study / "trial_run" / "checkpoints")
    assert any(r.is_full for r in running.checkpoints) and not running.finished
    # metrics history survives pruning
    assert len(read_manifest(study / "trial_0" / "checkpoints").history) == 3
    best = CheckpointRef.best(study)
    assert [(b.trial_dir.name, b.value) for b in best] == [("trial_1", 0.9)]
    assert best[0].path.is_dir()


def test_dry_run_reports_without_deleting(tmp_path: Path) -> None:
    study = tmp_path / "study_1"
    for name, best in [("trial_0", 0.5), ("trial_1", 0.9)]:
        run_trial(study, name, [best], policy=RetentionPolicy(keep_best_trials=5))
    before = trial_bytes(study)
    report = apply_study_retention(study, 1, dry_run=True)
    assert report.pruned_trials == ["trial_0"] and report.bytes_freed > 0
    assert trial_bytes(study) == before


def test_find_best_returns_co_best_across_trials(tmp_path: Path) -> None:
    study = tmp_path / "study_1"
    for name in ("trial_0", "trial_1"):
        run_trial(study, name, [0.3, 0.8], policy=RetentionPolicy(keep_best_trials=5))
    assert sorted(b.trial_dir.name for b in CheckpointRef.best(study)) == ["trial_0", "trial_1"]
    assert len(CheckpointRef.best(study / "trial_0")) == 1


@settings(max_examples=8, deadline=None)
@given(n_trials=st.integers(2, 7), keep=st.integers(1, 3))
def test_disk_is_bounded_however_many_trials(tmp_path_factory, n_trials: int, keep: int) -> None:
    study = tmp_path_factory.mktemp("s") / "study_1"
    policy = RetentionPolicy(keep_best_trials=keep)
    per_trial = None
    for index in range(n_trials):
        run_trial(study, f"trial_{index}", [0.1 * ((index * 3) % 7), 0.05], policy=policy)
        if per_trial is None:
            per_trial = trial_bytes(study)
        assert trial_bytes(study) <= keep * per_trial


def test_a_trial_whose_metric_never_moved_keeps_one_copy(tmp_path: Path) -> None:
    study = tmp_path / "study_1"
    run_trial(study, "trial_0000", [0.0, 0.0])  # a model stuck at 0.0 in both epochs
    run_trial(study, "trial_0001", [0.5, 0.5, 0.2])  # a real tie at the top stays co-best
    stuck = read_manifest(study / "trial_0000" / "checkpoints")
    tied = read_manifest(study / "trial_0001" / "checkpoints")
    assert [r.epoch for r in stuck.checkpoints] == [1]
    assert [r.epoch for r in tied.checkpoints] == [0, 1]


def test_one_rule_names_what_finishing_keeps(tmp_path: Path) -> None:
    """``best_of_trial`` before finishing == what finishing keeps == what the lookups return."""
    study = tmp_path / "study_1"
    policy = RetentionPolicy(keep_best_trials=5)
    cases = {
        "trial_0000": ([0.5, 0.5, 0.2], [0, 1]),  # a real tie at the top: both co-best
        "trial_0001": ([0.1, 0.1], [1]),  # never moved: the newest only
        "trial_0002": ([float("nan"), 0.3], [1]),  # NaN is never best
    }
    for name, (values, _) in cases.items():
        run_trial(study, name, values, finished=False, policy=policy)
    for name, (_, epochs) in cases.items():
        directory = study / name / "checkpoints"
        before = [r.id for r in best_of_trial(read_manifest(directory), "f1")]
        assert [r.record.id for r in CheckpointRef.best(study / name)] == before
        assert [int(i[6:10]) for i in before] == epochs, name
        finish_trial(directory, "f1")
        after = read_manifest(directory)
        assert after.finished and [r.id for r in after.checkpoints] == before
        assert [r.id for r in best_of_trial(after, "f1")] == before  # idempotent
    best = CheckpointRef.best(study)
    assert [(r.trial_dir.name, r.record.epoch) for r in best] == [
        ("trial_0000", 0),
        ("trial_0000", 1),
    ]


def _count_manifest_reads(monkeypatch) -> list[Path]:  # type: ignore[no-untyped-def]
    """Record every manifest the study-level code reads (the real reader does the reading)."""
    from mental_health_hpo.checkpointing import _study as study_module
    from mental_health_hpo.checkpointing import _study_retention as study_retention

    reads: list[Path] = []

    def counting(directory):  # type: ignore[no-untyped-def]
        # A folder, or the storage the study-level code opened on it (the seam).
        reads.append(Path(getattr(directory, "local_path", lambda _: directory)("")))
        return read_manifest(directory)

    monkeypatch.setattr(study_retention, "read_manifest", counting)
    monkeypatch.setattr(study_module, "read_manifest", counting)
    return reads


def test_a_trial_end_reads_only_the_manifests_whose_retention_changes(
    tmp_path: Path, monkeypatch
) -> None:
    study = tmp_path / "study_1"
    policy = RetentionPolicy(keep_best_trials=2)
    for index in range(12):
        run_trial(study, f"trial_{index:04d}", [0.01 * index], policy=policy)
    reads = _count_manifest_reads(monkeypatch)
    run_trial(study, "trial_0012", [0.5], policy=policy)  # enters the top 2: trial_0010 leaves
    touched = sorted({p.parent.name for p in reads})
    assert touched == ["trial_0010", "trial_0012"]
    assert len(reads) <= 4  # its own (before and after finishing) and the one it pushes out
    kept = {t.name for t in study.glob("trial_*") if read_manifest(t / "checkpoints").checkpoints}
    assert kept == {"trial_0011", "trial_0012"}


def test_the_retention_index_is_rebuilt_from_the_manifests_when_missing_or_stale(
    tmp_path: Path,
) -> None:
    study = tmp_path / "study_1"
    policy = RetentionPolicy(keep_best_trials=2)
    for index, best in enumerate([0.3, 0.6, 0.2]):
        run_trial(study, f"trial_{index:04d}", [best], policy=policy)
    index_path = study / "retention_index.json"
    first = json.loads(index_path.read_text())
    manifest = (study / "trial_0002" / "checkpoints" / "manifest.json").stat()
    seen = [manifest.st_ino, manifest.st_size, manifest.st_mtime_ns]
    assert first["trials"]["trial_0002"] == {"best": None, "kept": False, "seen": seen}
    index_path.unlink()  # missing: rebuilt by the next trial end, the same as before
    run_trial(study, "trial_0003", [0.1], policy=policy)
    rebuilt = json.loads(index_path.read_text())
    assert rebuilt["trials"].keys() == {"trial_0000", "trial_0001", "trial_0002", "trial_0003"}
    assert {k: v for k, v in rebuilt["trials"].items() if k != "trial_0003"} == first["trials"]

    # Stale: the best kept trial lost its checkpoints behind the index (dropped by hand, or
    # quarantined). Trusting the index would prune the next trial for a trial that keeps
    # nothing; the trial end sees the change (one stat per top trial) and rebuilds instead.
    dropped = study / "trial_0001" / "checkpoints"
    manifest = read_manifest(dropped)
    manifest.checkpoints = []
    write_manifest(dropped, manifest)
    run_trial(study, "trial_0004", [0.25], policy=policy)
    kept = {t.name for t in study.glob("trial_*") if read_manifest(t / "checkpoints").checkpoints}
    assert kept == {"trial_0000", "trial_0004"}
    final = json.loads(index_path.read_text())["trials"]
    assert final["trial_0001"]["best"] is None and not final["trial_0001"]["kept"]
    assert [k for k, v in final.items() if v["kept"]] == ["trial_0000", "trial_0004"]
