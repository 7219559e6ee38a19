"""LocalStorage never clobbers what another writer committed: a checkpoint's files are created
only if absent, and the manifest is replaced only while it is the version this storage knows.

The POSIX stand-in for the bucket's ``If-None-Match`` / ``If-Match`` preconditions, so a stalled
worker whose trial was taken over cannot replace its successor's checkpoint or manifest (see
tests/distributed/test_stale_owner.py for the whole story with real workers). The racing tests
use real processes released together by a barrier, many rounds each.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
import torch

from mental_health_hpo.checkpointing import (
    CheckpointManager,
    CheckpointOptions,
    RetentionPolicy,
    read_manifest,
)
from mental_health_hpo.workspace import TrialTakenOverError
from mental_health_hpo.workspace.storage import LocalStorage

MANIFEST = "manifest.json"
ROUNDS = 40


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


def test_a_checkpoint_file_another_storage_wrote_is_never_replaced(tmp_path: Path) -> None:
    successor, stale = LocalStorage(tmp_path), LocalStorage(tmp_path)
    successor.put("ckpt-e0001/model.safetensors", b"successor")
    successor.put("ckpt-e0001/model.safetensors", b"successor, again")  # its own: replaced
    staged = stale.stage("ckpt-e0001/model.safetensors")
    staged.write(b"stale")
    with pytest.raises(FileExistsError):
        staged.commit()
    staged.discard()
    with pytest.raises(FileExistsError):
        stale.put("ckpt-e0001/model.safetensors", b"stale")
    assert successor.read("ckpt-e0001/model.safetensors") == b"successor, again"
    assert _temp_files(tmp_path) == []


def test_if_absent_never_clobbers_a_top_level_key(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put("record.json", b"first", if_absent=True)
    with pytest.raises(FileExistsError):
        store.put("record.json", b"second", if_absent=True)
    assert store.read("record.json") == b"first"
    assert _temp_files(tmp_path) == []


def test_a_manifest_changed_since_this_storage_wrote_it_is_not_replaced(tmp_path: Path) -> None:
    stale = LocalStorage(tmp_path)
    assert not stale.exists(MANIFEST)
    stale.put(MANIFEST, b"epoch 0, by the stale owner")
    stale.put(MANIFEST, b"epoch 0 again")  # its own version: it may replace it
    successor = LocalStorage(tmp_path)
    assert successor.read(MANIFEST) == b"epoch 0 again"
    successor.put(MANIFEST, b"epoch 1, by the successor")
    assert stale.read(MANIFEST) == b"epoch 1, by the successor"  # a read does not re-arm it
    with pytest.raises(TrialTakenOverError, match="changed since this worker"):
        stale.put(MANIFEST, b"epoch 1, stale")
    with pytest.raises(TrialTakenOverError):
        stale.copy(MANIFEST, "manifest.prev.json")
    assert successor.read(MANIFEST) == b"epoch 1, by the successor"
    assert not (tmp_path / "manifest.prev.json").exists()
    successor.put(MANIFEST, b"epoch 2, by the successor")  # the owner goes on
    assert _temp_files(tmp_path) == []


def test_a_manifest_this_storage_saw_absent_is_only_created(tmp_path: Path) -> None:
    stale, successor = LocalStorage(tmp_path), LocalStorage(tmp_path)
    with pytest.raises(FileNotFoundError):
        stale.read(MANIFEST)  # nothing committed yet, as the stale owner saw it
    successor.put(MANIFEST, b"the successor's first commit")
    with pytest.raises(TrialTakenOverError, match="changed since this worker"):
        stale.put(MANIFEST, b"the stale owner's first commit")
    assert successor.read(MANIFEST) == b"the successor's first commit"


def _race(root: Path, key: str, me: str, barrier: Barrier, results: multiprocessing.Queue) -> None:
    """One racer: each round, stage its own bytes, wait for the other, commit."""
    for round_ in range(ROUNDS):
        store = LocalStorage(root / f"round_{round_:03d}")
        if key == MANIFEST:
            with contextlib.suppress(FileNotFoundError):
                store.read(MANIFEST)  # the version both racers know (or its absence)
        staged = store.stage(key)
        staged.write(f"{me} {round_}".encode())
        barrier.wait(timeout=60)
        try:
            staged.commit()
            results.put((round_, me, "won"))
        except (FileExistsError, TrialTakenOverError) as error:
            staged.discard()
            results.put((round_, me, type(error).__name__))


@pytest.mark.parametrize(
    ("key", "seeded"),
    [("ckpt-e0001/model.safetensors", False), (MANIFEST, False), (MANIFEST, True)],
    ids=["checkpoint-file", "first-manifest", "manifest-replace"],
)
def test_two_racing_processes_never_both_commit(tmp_path: Path, key: str, seeded: bool) -> None:
    for round_ in range(ROUNDS):
        (tmp_path / f"round_{round_:03d}").mkdir()
        if seeded:
            LocalStorage(tmp_path / f"round_{round_:03d}").put(MANIFEST, b"committed before")
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    racers = [
        context.Process(target=_race, args=(tmp_path, key, me, barrier, results))
        for me in ("a", "b")
    ]
    for racer in racers:
        racer.start()
    try:
        outcomes = [results.get(timeout=120) for _ in range(2 * ROUNDS)]
    finally:
        for racer in racers:
            racer.join(timeout=30)
            if racer.is_alive():
                racer.kill()
                racer.join()
    assert [racer.exitcode for racer in racers] == [0, 0]
    for round_ in range(ROUNDS):
        mine = sorted((who, how) for r, who, how in outcomes if r == round_)
        winners = [who for who, how in mine if how == "won"]
        assert len(winners) == 1, (round_, mine)  # exactly one commit per round
        folder = tmp_path / f"round_{round_:03d}"
        assert (folder / key).read_bytes() == f"{winners[0]} {round_}".encode()
    assert _temp_files(tmp_path) == []


@pytest.mark.parametrize("writer", ["sync", "deferred"])
def test_a_manager_that_lost_its_lease_writes_nothing(tmp_path: Path, writer: str) -> None:
    """``still_owner`` is asked before a save writes: a worker told it lost the trial leaves
    no file behind, and the checkpoints it committed while it held the lease stay as they were."""
    directory = tmp_path / "study_1" / "trial_0000" / "checkpoints"
    owner = [True]
    options = CheckpointOptions(
        metric_name="f1", writer=writer, watch_disk=False, policy=RetentionPolicy(keep_last_n=3)
    )
    weights = {"w": torch.ones(4)}
    with CheckpointManager(directory, options, still_owner=lambda: owner[0]) as manager:
        manager.save(epoch=0, step=1, metrics={"f1": 0.1}, weights=weights, training_state={})
        manager.flush()
        before = read_manifest(directory)
        owner[0] = False
        with pytest.raises(TrialTakenOverError, match="lease"):
            manager.save(epoch=1, step=2, metrics={"f1": 0.2}, weights=weights, training_state={})
            manager.flush()
    assert before is not None and read_manifest(directory) == before
    assert sorted(p.name for p in directory.iterdir()) == [before.checkpoints[0].id, MANIFEST]
