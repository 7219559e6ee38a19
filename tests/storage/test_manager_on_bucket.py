"""The checkpoint core's own manager on a bucket (a real S3 server): saves, retention, a verified
load on another worker with an empty cache, and SIGKILLs of a saving process at each upload of
a save (data objects, the checkpoint's record, the manifest): 0 corrupt loads, the dry run lists
what the kill left, 0 orphans after the start-up sweep, and the trial resumes from the bucket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from mental_health_hpo.checkpointing import (
    CheckpointManager,
    CheckpointOptions,
    RetentionPolicy,
    read_manifest,
)
from mental_health_hpo.checkpointing._bucket_sweep import uncommitted_objects
from mental_health_hpo.workspace import TrialTakenOverError
from mental_health_hpo.workspace.storage import ObjectStorage, walk
from tests.checkpointing.conftest import TinyNet, save_epochs

WRITER = Path(__file__).with_name("manager_writer.py")
REPO = Path(__file__).resolve().parents[2]


def _options() -> CheckpointOptions:
    return CheckpointOptions(
        metric_name="f1", policy=RetentionPolicy(), writer="sync", watch_disk=False
    )


def _verify_every_checkpoint(url: str, cache: Path) -> int:
    """Open the trial as a new worker would; load every committed checkpoint (SHA-256 checked
    on the bytes read from the bucket); returns the newest epoch. Nothing is quarantined."""
    storage = ObjectStorage(url, cache)
    try:
        manager = CheckpointManager(storage, _options())
        records = read_manifest(storage).checkpoints
        assert records, "the bucket holds no committed checkpoint"
        for record in records:
            manager.load(record.id)  # raises on a missing or corrupt object
        latest = manager.load_latest()
        assert latest is not None
        manager.close()
        assert uncommitted_objects(storage) == [], "orphans left after the start-up sweep"
        assert not storage.exists(".quarantine"), "a checkpoint was found corrupt"
        return latest.record.epoch
    finally:
        storage.close()


def test_a_trial_saved_on_a_bucket_loads_verified_on_another_worker(
    s3_url: str, tmp_path: Path
) -> None:
    url = f"{s3_url}/study_s/trial_0000/checkpoints"
    storage = ObjectStorage(url, tmp_path / "worker-a")
    manager = CheckpointManager(storage, _options())
    torch.manual_seed(0)
    model = TinyNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    save_epochs(manager, model, optimizer, [0.2, 0.5, 0.3, 0.4])
    manager.close()
    storage.close()
    assert not (tmp_path / "worker-a").exists(), "the finished trial's cache is gone"

    other = ObjectStorage(url, tmp_path / "worker-b")
    try:
        keys = set(walk(other))
        assert "manifest.json" in keys
        records = read_manifest(other).checkpoints
        assert {r.epoch for r in records} >= {1}, "the best epoch (0.5) is retained"
        for record in records:
            for entry in record.files.values():
                assert entry.path in keys
        loaded = CheckpointManager(other, _options()).load_latest()
        assert loaded is not None and loaded.record.epoch == 3
        for name, tensor in model.state_dict().items():
            assert torch.equal(loaded.weights[name], tensor), name
    finally:
        other.close()


def _dry_run(url: str, cache: Path) -> list[str]:
    """What the start-up sweep would remove, listed twice: the listing removes nothing."""
    storage = ObjectStorage(url, cache)
    try:
        listed = uncommitted_objects(storage)
        assert uncommitted_objects(storage) == listed
        return listed
    finally:
        storage.close()


E0, E1 = "ckpt-e0000-s000010", "ckpt-e0001-s000020"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("upload", "saved", "orphans"),
    [(2, [], [E0]), (4, [], [E0]), (5, [0], []), (7, [0], [E1]), (8, [0], [E1])],
    ids=["epoch0-state", "epoch0-manifest", "epoch1-weights", "epoch1-record", "epoch1-manifest"],
)
def test_a_save_killed_at_an_upload_leaves_a_whole_trial_that_resumes_from_the_bucket(
    s3_url: str,
    tmp_path: Path,
    spawn: Callable[..., Any],
    upload: int,
    saved: list[int],
    orphans: list[str],
) -> None:
    """A save uploads weights, training state, the checkpoint's record, then the manifest (4
    uploads per epoch): the kill lands before the ``upload``-th."""
    url = f"{s3_url}/study_k/trial_0000/checkpoints"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
        "MH_HPO_CRASH_AT": f"object_upload@{upload}",
        "MH_HPO_CRASH_LOG": str(tmp_path / "crashes.log"),
    }
    command = [sys.executable, str(WRITER), url]
    killed = spawn([*command, str(tmp_path / "a"), "4"], env=env, stdout=subprocess.PIPE, text=True)
    out, _ = killed.communicate(timeout=180)
    assert killed.returncode == -signal.SIGKILL, out
    assert f"object_upload@{upload}" in (tmp_path / "crashes.log").read_text()
    assert [int(line.split()[1]) for line in out.splitlines() if line.startswith("saved")] == saved

    assert _dry_run(url, tmp_path / "check") == orphans
    if saved:  # 0 corrupt loads, 0 orphans once a manager started (its start-up sweep)
        assert _verify_every_checkpoint(url, tmp_path / "check") == saved[-1]
    env.pop("MH_HPO_CRASH_AT")
    resumed = spawn(
        [*command, str(tmp_path / "b"), "1"], env=env, stdout=subprocess.PIPE, text=True
    )
    out, _ = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, out
    assert out.splitlines()[0] == f"resumed {saved[-1] if saved else 'none'}"
    assert _verify_every_checkpoint(url, tmp_path / "check") == (saved[-1] + 1 if saved else 0)


def test_a_worker_that_lost_its_trial_cannot_overwrite_its_successors_checkpoint(
    s3_url: str, tmp_path: Path
) -> None:
    """A stalled worker's lease was taken over: its successor resumed from the bucket and saved
    epoch 2. The stalled one wakes up and saves epoch 2 too (same checkpoint id): the core first
    deleted "its uncommitted leftover" of that id, which is the successor's committed checkpoint,
    until the bucket's fence stopped it; now the save is refused before it writes or deletes
    anything (the id exists), and the successor's checkpoints all load verified."""
    url = f"{s3_url}/study_t/trial_0000/checkpoints"
    torch.manual_seed(0)
    model, successor_model = TinyNet(), TinyNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    stalled_storage = ObjectStorage(url, tmp_path / "stalled")
    stalled = CheckpointManager(stalled_storage, _options())
    save_epochs(stalled, model, optimizer, [0.2, 0.3])
    stalled_storage.flush()

    successor_storage = ObjectStorage(url, tmp_path / "successor")
    successor = CheckpointManager(successor_storage, _options())
    resumed = successor.load_latest()
    assert resumed is not None and resumed.record.epoch == 1
    successor_model.load_state_dict(resumed.weights)
    successor_optimizer = torch.optim.AdamW(successor_model.parameters(), lr=0.01)
    save_epochs(successor, successor_model, successor_optimizer, [0.4], start=2)
    successor.close()
    successor_storage.close()

    with pytest.raises(TrialTakenOverError, match="exists"):  # refused before writing
        save_epochs(stalled, model, optimizer, [0.9], start=2)
    stalled.close()
    stalled_storage.close()  # nothing of the refused save was queued

    assert _verify_every_checkpoint(url, tmp_path / "check") == 2
    check = ObjectStorage(url, tmp_path / "check2")
    try:
        latest = CheckpointManager(check, _options()).load_latest()
        assert latest is not None and latest.record.metrics["f1"] == 0.4, "the successor's"
        for name, tensor in successor_model.state_dict().items():
            assert torch.equal(latest.weights[name], tensor), name
    finally:
        check.close()
