"""The storage seam's contract on the object-store backend, against a real S3 server
(SeaweedFS on 127.0.0.1): what tests/checkpointing/test_storage.py asks of the POSIX backend,
plus what only a bucket shared by workers needs: conditional commits decided by the bucket,
the write-behind queue's order and its stop at the first failure, and a cache that holds only
what is retained."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import s3fs

from mental_health_hpo.workspace.storage import (
    Entry,
    LocalStorage,
    ObjectStorage,
    UploadFailedError,
    open_storage,
    walk,
)


@pytest.fixture
def bucket_fs(s3_url: str) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)


@pytest.fixture
def store(s3_url: str, tmp_path: Path):
    storage = ObjectStorage(f"{s3_url}/study_x/trial_0001/checkpoints", tmp_path / "cache")
    yield storage
    storage.close()


def test_put_replaces_and_leaves_only_the_object(store: ObjectStorage) -> None:
    store.put("a/b.bin", b"old")
    store.put("a/b.bin", b"new")
    assert store.read("a/b.bin") == b"new"
    assert store.list("a") == [Entry("b.bin", False)]
    assert store.size("a/b.bin") == 3


def test_a_staged_object_is_invisible_until_committed(store: ObjectStorage) -> None:
    store.put("k", b"old")
    staged = store.stage("k")
    staged.write(b"new ")
    staged.write(memoryview(b"bytes"))
    assert store.read("k") == b"old"
    assert staged.commit() == 9
    assert store.read("k") == b"new bytes"
    assert [e.name for e in store.list()] == ["k"]


def test_discard_keeps_the_old_bytes_and_uploads_nothing(store: ObjectStorage) -> None:
    store.put("k", b"old")
    staged = store.stage("k")
    staged.write(b"partial")
    staged.discard()
    staged.discard()
    assert store.read("k") == b"old"
    assert [e.name for e in store.list()] == ["k"]


def test_commit_runs_on_another_thread_than_the_writes(store: ObjectStorage) -> None:
    staged = store.stage("x/y")
    staged.write(b"z" * 1000)
    thread = threading.Thread(target=staged.commit)
    thread.start()
    thread.join()
    assert store.read("x/y") == b"z" * 1000


def test_two_workers_race_a_conditional_create_and_the_bucket_keeps_the_winner(
    s3_url: str, tmp_path: Path
) -> None:
    url = f"{s3_url}/study/trial_0002/checkpoints"
    first, second = ObjectStorage(url, tmp_path / "a"), ObjectStorage(url, tmp_path / "b")
    try:
        a, b = first.stage("claim"), second.stage("claim")
        a.write(b"first")
        b.write(b"second")
        a.commit(if_absent=True)
        with pytest.raises(FileExistsError):
            b.commit(if_absent=True)
        assert second.read("claim") == b"first"
        assert not (tmp_path / "b" / "claim").exists(), "the loser keeps no local copy"
        with pytest.raises(FileExistsError):
            first.put("claim", b"third", if_absent=True)
    finally:
        first.close()
        second.close()


def test_a_manifest_replaced_by_another_worker_is_not_overwritten(
    s3_url: str, tmp_path: Path
) -> None:
    """Each worker replaces the manifest only If-Match the ETag it last saw: the worker that
    lost the trial fails its commit, the bucket keeps the new owner's manifest."""
    url = f"{s3_url}/study/trial_0003/checkpoints"
    old_owner, new_owner = ObjectStorage(url, tmp_path / "a"), ObjectStorage(url, tmp_path / "b")
    try:
        with pytest.raises(FileNotFoundError):
            old_owner.read("manifest.json")  # seen absent: the first write is If-None-Match
        old_owner.put("manifest.json", b'{"epoch": 1}')
        old_owner.flush()
        assert new_owner.read("manifest.json") == b'{"epoch": 1}'
        new_owner.put("manifest.json", b'{"epoch": 2, "owner": "new"}')
        new_owner.flush()

        old_owner.put("manifest.json", b'{"epoch": 2, "owner": "old"}')
        with pytest.raises(UploadFailedError, match=r"pre-conditions|412|Precondition"):
            old_owner.flush()
        assert new_owner.read("manifest.json") == b'{"epoch": 2, "owner": "new"}'
    finally:
        with pytest.raises(UploadFailedError):
            old_owner.close()
        new_owner.close()


def test_missing_keys(store: ObjectStorage) -> None:
    with pytest.raises(FileNotFoundError):
        store.read("nope")
    with pytest.raises(FileNotFoundError):
        store.size("nope")
    assert store.list() == [] and not store.exists("nope")
    store.delete("nope")
    store.delete_prefix("nope")
    store.flush()


def test_prefixes_list_walk_and_delete_like_folders(store: ObjectStorage) -> None:
    for key in ("c1/a", "c1/sub/b", "c1-2/a", "top"):
        store.put(key, key.encode())
    assert store.list() == [Entry("c1", True), Entry("c1-2", True), Entry("top", False)]
    assert sorted(walk(store)) == ["c1-2/a", "c1/a", "c1/sub/b", "top"]
    assert store.exists("c1") and store.exists("c1/sub/b")
    store.delete_prefix("c1")
    assert not store.exists("c1")
    assert sorted(walk(store)) == ["c1-2/a", "top"], "a sibling sharing the name's start stays"


def test_copy_survives_a_replace_of_its_source_and_move_sets_a_prefix_aside(
    store: ObjectStorage,
) -> None:
    store.put("manifest", b"one")
    store.copy("manifest", "previous")
    store.put("manifest", b"two")
    assert store.read("previous") == b"one" and store.read("manifest") == b"two"
    store.put("ckpt/w", b"w")
    store.move("ckpt", ".quarantine/ckpt-1")
    assert store.read(".quarantine/ckpt-1/w") == b"w" and not store.exists("ckpt")


def test_objects_reach_the_bucket_in_commit_order_and_leave_the_cache_once_uploaded(
    store: ObjectStorage, bucket_fs: s3fs.S3FileSystem, s3_url: str
) -> None:
    root = f"{s3_url[5:]}/study_x/trial_0001/checkpoints"
    for epoch in (1, 2, 3):  # retention keeps the best (epoch 1) and the newest
        store.put(f"ckpt-{epoch}/model.safetensors", bytes([epoch]) * 4096)
        store.put(f"ckpt-{epoch}/training_state.pt", bytes([epoch]) * 8192)
        store.put("manifest.json", f'{{"kept": [1, {epoch}]}}'.encode())
        if epoch == 3:
            store.delete_prefix("ckpt-2")
    store.flush()
    assert sorted(bucket_fs.find(root)) == [
        f"{root}/{key}"
        for key in (
            "ckpt-1/model.safetensors",
            "ckpt-1/training_state.pt",
            "ckpt-3/model.safetensors",
            "ckpt-3/training_state.pt",
            "manifest.json",
        )
    ]
    cached = sorted(
        p.relative_to(store.cache_dir).as_posix() for p in store.cache_dir.rglob("*") if p.is_file()
    )
    assert cached == ["manifest.json"], "an uploaded checkpoint leaves the cache"
    assert store.local_path("manifest.json") is not None
    assert store.local_path("ckpt-1/model.safetensors") is None
    assert store.read("ckpt-1/model.safetensors") == bytes([1]) * 4096  # from the bucket
    store.close()
    assert not store.cache_dir.exists(), "a closed trial leaves nothing on the local disk"
    assert bucket_fs.cat(f"{root}/ckpt-3/model.safetensors") == bytes([3]) * 4096


def test_a_stale_cache_is_never_read(s3_url: str, tmp_path: Path) -> None:
    """A worker that takes a trial over reads the bucket, not what its disk held before."""
    url = f"{s3_url}/study/trial_0004/checkpoints"
    stale = tmp_path / "cache"
    (stale / "ckpt-1").mkdir(parents=True)
    (stale / "ckpt-1" / "model.safetensors").write_bytes(b"stale")
    writer = ObjectStorage(url, tmp_path / "writer")
    writer.put("ckpt-1/model.safetensors", b"fresh")
    writer.close()
    taker = ObjectStorage(url, stale)
    try:
        assert taker.read("ckpt-1/model.safetensors") == b"fresh"
        assert not (stale / "ckpt-1").exists()
    finally:
        taker.close()


def test_open_storage_routes_urls_to_the_bucket_and_paths_to_the_disk(
    s3_url: str, tmp_path: Path
) -> None:
    remote = open_storage(f"{s3_url}/x", tmp_path / "cache")
    assert isinstance(remote, ObjectStorage) and remote.local_path("a") is None
    remote.close()
    local = open_storage(tmp_path / "folder", tmp_path / "unused")
    assert isinstance(local, LocalStorage)


def test_what_this_storage_committed_is_read_from_the_cache_until_uploaded(
    s3_url: str, tmp_path: Path
) -> None:
    url = f"{s3_url}/study/trial_0005/checkpoints"
    writer = ObjectStorage(url, tmp_path / "writer")
    reader = ObjectStorage(url, tmp_path / "reader")
    try:
        writer.put("manifest.json", b"{}")
        writer.put("ckpt-1/model.safetensors", b"weights")
        writer.flush()  # both reached the bucket; the checkpoint left the cache
        manifest = writer.local_path("manifest.json")
        assert manifest is not None and manifest.read_bytes() == b"{}"  # read every commit
        assert writer.local_path("ckpt-1/model.safetensors") is None
        assert not (tmp_path / "writer" / "ckpt-1" / "model.safetensors").exists()
        assert writer.local_path("") is None, "the trial has no local folder"
        assert writer.read("ckpt-1/model.safetensors") == b"weights"  # from the bucket
        assert reader.read("ckpt-1/model.safetensors") == b"weights"
        writer.delete_prefix("ckpt-1")
        writer.flush()
        assert not reader.exists("ckpt-1")
    finally:
        writer.close()
        reader.close()
