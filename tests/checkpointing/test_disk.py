"""Disk pressure: estimates, preflight, aggressive pruning, the out-of-storage error on a tmpfs."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
import torch

from mental_health_hpo.checkpointing import (
    InsufficientDiskSpaceError,
    RetentionPolicy,
    StudyRetention,
    read_manifest,
)
from mental_health_hpo.checkpointing import _pressure as disk_module
from mental_health_hpo.checkpointing import _pressure as pressure_module
from mental_health_hpo.checkpointing._pressure import (
    DiskUsage,
    estimate_checkpoint_bytes,
    preflight_check,
)
from mental_health_hpo.checkpointing._retention import estimate_retained_bytes
from mental_health_hpo.workspace.locks import FileStudyLock
from tests.checkpointing.conftest import TinyNet, save_epochs, train_step
from tests.checkpointing.support import finish, open_manager

MB = 1024 * 1024


def test_estimate_counts_model_optimizer_and_overhead() -> None:
    model = TinyNet()
    weights = sum(t.numel() * 4 for t in model.state_dict().values())
    opt = torch.optim.AdamW(model.parameters())
    assert estimate_checkpoint_bytes(model) == weights + MB
    assert estimate_checkpoint_bytes(model, opt) == 3 * weights + MB  # two Adam moments, no state
    train_step(model, opt)
    measured = estimate_checkpoint_bytes(model, opt)
    assert measured >= 3 * weights + MB  # real state now (plus step counters)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    assert estimate_checkpoint_bytes(model, sgd) == 2 * weights + MB


def test_retained_estimate_scales_with_policy() -> None:
    small = estimate_retained_bytes(300, 100, RetentionPolicy())
    big = estimate_retained_bytes(300, 100, RetentionPolicy(keep_last_n=3, keep_best_k_max=4))
    assert small == 2 * 300 + 2 * 100 and big == 4 * 300 + 4 * 100


def test_preflight_raises_fr014_when_policy_cannot_fit(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(disk_module, "disk_usage", lambda p: DiskUsage(10 * MB, 9 * MB, MB))
    with pytest.raises(InsufficientDiskSpaceError) as info:
        preflight_check(tmp_path, 2 * MB, RetentionPolicy())
    message = str(info.value)
    assert "needed for the next checkpoint" in message and "--apply" in message
    assert preflight_check(tmp_path, 1000, RetentionPolicy(), weights_bytes=10) > 0


def make_study(tmp_path: Path, values_by_trial: dict[str, list[float]]) -> Path:
    study = tmp_path / "study_7"
    for trial, values in values_by_trial.items():
        model = TinyNet()
        opt = torch.optim.AdamW(model.parameters())
        with open_manager(
            study / trial / "checkpoints", metric_name="f1", async_save=False, check_disk=False
        ) as manager:
            save_epochs(manager, model, opt, values)
            finish(manager)
    return study


def test_low_free_space_triggers_the_three_aggressive_steps(tmp_path, monkeypatch) -> None:
    study = make_study(tmp_path, {"trial_a": [0.9], "trial_b": [0.7], "trial_c": [0.5]})
    free = {"bytes": 500 * MB}
    monkeypatch.setattr(
        pressure_module, "disk_usage", lambda p: DiskUsage(1000 * MB, 0, free["bytes"])
    )
    model = TinyNet()
    opt = torch.optim.AdamW(model.parameters())
    manager = open_manager(
        study / "trial_d" / "checkpoints",
        metric_name="f1",
        policy=RetentionPolicy(keep_last_n=3, keep_best_k=2, keep_best_k_max=3),
        async_save=False,
    )
    save_epochs(manager, model, opt, [0.1, 0.8, 0.2, 0.3, 0.4])
    assert len(manager.records()) == 4  # 3 last + best, plenty of space so far
    free["bytes"] = 50 * MB  # below the 10% threshold: prune
    save_epochs(manager, model, opt, [0.35], start=5)
    kept = {(r.epoch, r.kind) for r in manager.records()}
    assert kept == {(1, "weights"), (5, "full")}  # step 1 + emergency policy from now on
    assert manager.policy.emergency and manager.policy.keep_last_n == 0
    assert (study / "retention_pressure.json").exists()  # later trials start in emergency mode
    survivors = [
        t
        for t in ("trial_a", "trial_b", "trial_c")
        if read_manifest(study / t / "checkpoints").checkpoints
    ]
    assert survivors == ["trial_a", "trial_b", "trial_c"]  # a trial never prunes its siblings
    later = open_manager(study / "trial_e" / "checkpoints", metric_name="f1", async_save=False)
    assert later.policy.emergency
    later.close()
    manager.close()
    # Step 3 belongs to the study-retention service, which the runner calls when a trial ends:
    # under emergency retention only the single best trial of the study keeps its weights.
    retention = StudyRetention(study, RetentionPolicy(), "f1", FileStudyLock(study))
    retention.trial_finished(study / "trial_d")
    survivors = [
        t
        for t in ("trial_a", "trial_b", "trial_c", "trial_d")
        if read_manifest(study / t / "checkpoints").checkpoints
    ]
    assert survivors == ["trial_a"]
    assert (study / "retention_pressure.json").exists()
    free["bytes"] = 500 * MB  # space is back above the threshold: emergency mode ends
    retention.reconcile([])
    assert not (study / "retention_pressure.json").exists()
    fresh = open_manager(study / "trial_f" / "checkpoints", metric_name="f1", async_save=False)
    assert not fresh.policy.emergency
    fresh.close()


def test_cannot_make_room_gives_fr014_and_keeps_protected(tmp_path, monkeypatch) -> None:
    model = TinyNet()
    opt = torch.optim.AdamW(model.parameters())
    free = {"bytes": 1000 * MB}
    monkeypatch.setattr(
        pressure_module, "disk_usage", lambda p: DiskUsage(1000 * MB, 0, free["bytes"])
    )
    manager = open_manager(tmp_path / "t" / "checkpoints", metric_name="f1", async_save=False)
    save_epochs(manager, model, opt, [0.9, 0.1])
    free["bytes"] = 1000  # less than one checkpoint (1 MB overhead alone)
    with pytest.raises(InsufficientDiskSpaceError, match="needed for the next checkpoint"):
        save_epochs(manager, model, opt, [0.5], start=2)
    assert {(r.epoch, r.kind) for r in manager.records()} == {(0, "weights"), (1, "full")}
    assert manager.load_latest().record.epoch == 1
    manager.close()


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"mount -t tmpfs not permitted here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_on_real_tmpfs_gives_fr014_with_previous_intact(small_tmpfs: Path) -> None:
    """8 MiB tmpfs, 3 MiB checkpoints: the third cannot fit next to the protected two."""
    directory = small_tmpfs / "study_1" / "trial_0" / "checkpoints"
    big = {"w": torch.zeros(384 * 1024)}  # 1.5 MiB of weights, as much training state
    manager = open_manager(directory, metric_name="f1", async_save=True, policy=RetentionPolicy())
    for epoch, value in enumerate([0.9, 0.1]):  # the best stays as weights-only, latest full
        big["w"].fill_(epoch)
        manager.save(
            epoch=epoch,
            step=epoch,
            metrics={"f1": value},
            weights=big,
            training_state={"m": big["w"] * 2},
        )
    manager.flush()
    with pytest.raises(InsufficientDiskSpaceError) as info:
        manager.save(
            epoch=2, step=2, metrics={"f1": 0.5}, weights=big, training_state={"m": big["w"] * 3}
        )
    message = str(info.value)
    assert "disk usage" in message and "needed for the next checkpoint" in message
    assert str(directory / "ckpt-e0001-s000001" / "training_state.pt") in message
    assert "mental_health_hpo.checkpointing.cleanup" in message and "minimal" in message
    assert {(r.epoch, r.kind) for r in manager.records()} == {(0, "weights"), (1, "full")}
    latest = manager.load_latest()
    assert latest is not None and float(latest.weights["w"][0]) == 1.0
    assert float(manager.load("ckpt-e0000-s000000").weights["w"][0]) == 0.0
    manager.close()
