"""The storage seam's contract, on the POSIX backend: atomic, durable, conditional writes.

These tests state what any backend must do (an object-store backend can run them too): a key
holds its old bytes or the new ones, a staged object is invisible until committed, a
conditional create loses a race instead of overwriting, prefixes list and delete like folders.
"""

from __future__ import annotations

import itertools
import os
import threading
from pathlib import Path

import pytest

from mental_health_hpo.workspace.storage import Entry, LocalStorage, walk
from mental_health_hpo.workspace.storage import _seam as storage_module


def test_put_replaces_and_leaves_only_the_object(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put("a/b.bin", b"old")
    store.put("a/b.bin", b"new")
    assert store.read("a/b.bin") == b"new"
    assert store.list("a") == [Entry("b.bin", False)]
    assert store.size("a/b.bin") == 3


def test_a_staged_object_is_invisible_until_committed(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put("k", b"old")
    staged = store.stage("k")
    staged.write(b"new ")
    staged.write(memoryview(b"bytes"))
    assert store.read("k") == b"old"
    assert staged.commit() == 9
    assert store.read("k") == b"new bytes"
    assert [e.name for e in store.list()] == ["k"]


def test_discard_keeps_the_old_bytes_and_no_temp(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put("k", b"old")
    staged = store.stage("k")
    staged.write(b"partial")
    staged.discard()
    staged.discard()  # idempotent
    assert store.read("k") == b"old"
    assert [e.name for e in store.list()] == ["k"]


def test_commit_runs_on_another_thread_than_the_writes(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    staged = store.stage("x/y")
    staged.write(b"z" * 1000)
    errors: list[BaseException] = []

    def commit() -> None:
        try:
            staged.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=commit)
    thread.start()
    thread.join()
    assert not errors and store.read("x/y") == b"z" * 1000


def test_conditional_create_loses_the_race_and_keeps_the_winner(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    first, second = store.stage("claim"), store.stage("claim")
    first.write(b"first")
    second.write(b"second")
    first.commit(if_absent=True)
    with pytest.raises(FileExistsError):
        second.commit(if_absent=True)
    second.discard()
    assert store.read("claim") == b"first"
    with pytest.raises(FileExistsError):
        store.put("claim", b"third", if_absent=True)
    assert [e.name for e in store.list()] == ["claim"]


def test_commit_fsyncs_the_file_then_the_folder(tmp_path: Path, monkeypatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(str(Path(f"/proc/self/fd/{fd}").readlink()))
        real_fsync(fd)

    if not Path("/proc/self/fd").exists():
        pytest.skip("needs /proc to name the fsynced descriptors")
    monkeypatch.setattr(os, "fsync", spy)
    LocalStorage(tmp_path).put("f", b"x")
    assert Path(synced[0]).name.startswith(".tmp-f.")  # the temp file, beside its target
    assert Path(synced[-1]) == tmp_path  # then the folder holding the rename


def test_missing_keys(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "absent")
    with pytest.raises(FileNotFoundError):
        store.read("nope")
    with pytest.raises(FileNotFoundError):
        store.size("nope")
    assert store.list() == [] and not store.exists("nope")
    store.delete("nope")
    store.delete_prefix("nope")


def test_prefixes_list_walk_and_delete_like_folders(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    for key in ("c1/a", "c1/sub/b", "c2/a", "top"):
        store.put(key, key.encode())
    assert store.list() == [Entry("c1", True), Entry("c2", True), Entry("top", False)]
    assert sorted(walk(store)) == ["c1/a", "c1/sub/b", "c2/a", "top"]
    assert store.exists("c1") and store.exists("c1/sub/b")
    store.delete_prefix("c1")
    assert not store.exists("c1") and not (tmp_path / "c1").exists()
    assert sorted(walk(store)) == ["c2/a", "top"]


def test_copy_survives_a_replace_of_its_source(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put("manifest", b"one")
    store.copy("manifest", "previous")
    store.copy("manifest", "previous")  # linked already: nothing to do, nothing left behind
    store.put("manifest", b"two")
    assert store.read("previous") == b"one" and store.read("manifest") == b"two"
    assert sorted(e.name for e in store.list()) == ["manifest", "previous"]


def test_move_sets_a_prefix_aside(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put("ckpt/w", b"w")
    store.move("ckpt", ".quarantine/ckpt-1")
    assert store.read(".quarantine/ckpt-1/w") == b"w" and not store.exists("ckpt")


def test_keys_stay_under_the_root(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    for bad in ("/etc/passwd", "../x", "a/../../x"):
        with pytest.raises(ValueError, match="relative"):
            store.put(bad, b"x")


def test_large_writes_start_writeback_before_the_commit(tmp_path: Path, monkeypatch) -> None:
    """Writeback of a big object starts while it is still being written, so the commit's fsync
    only waits for the tail (the save then runs at the disk's pace, not write + fsync)."""
    if storage_module._sync_file_range is None:
        pytest.skip("no sync_file_range on this platform")
    ranges: list[tuple[int, int]] = []
    real = storage_module._sync_file_range

    def spy(fd: int, start: int, length: int, flags: int) -> int:
        ranges.append((start, length))
        return real(fd, start, length, flags)

    monkeypatch.setattr(storage_module, "_sync_file_range", spy)
    staged = LocalStorage(tmp_path).stage("big")
    chunk = b"\0" * (4 * 2**20)
    for _ in range(10):
        staged.write(chunk)
    staged.commit()
    assert ranges and ranges[0][0] == 0
    assert all(a[0] + a[1] == b[0] for a, b in itertools.pairwise(ranges))
