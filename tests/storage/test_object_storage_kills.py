"""SIGKILL, at random instants, a writer that commits like the checkpoint core (data objects,
then a manifest naming their SHA-256) on a bucket, with 4 MB objects so that kills land inside
uploads and manifest writes (a real child process, a real S3 server;
tests/storage/test_manager_on_bucket.py kills the core's own manager at each upload): every
manifest the bucket holds names objects that are there with the SHA-256 it records (0 corrupt
loads), what the kill left is listed by the dry run and gone after the sweep (0 orphans)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mental_health_hpo.checkpointing._bucket_sweep import abort_incomplete_uploads
from mental_health_hpo.workspace.storage import ObjectStorage, walk

WRITER = Path(__file__).with_name("object_writer.py")


def _writer(
    spawn: Callable[..., subprocess.Popen[Any]],
    url: str,
    cache: Path,
    epochs: int,
    size: int,
) -> subprocess.Popen[Any]:
    return spawn(
        [sys.executable, str(WRITER), url, str(cache), str(epochs), str(size)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def unnamed_objects(storage: ObjectStorage, named: set[str]) -> list[str]:
    """The dry run: keys the writer's manifest does not name."""
    return [key for key in walk(storage) if key not in named]


def remove_unnamed_objects(storage: ObjectStorage, named: set[str]) -> list[str]:
    orphans = unnamed_objects(storage, named)
    for key in orphans:
        storage.delete(key)
    abort_incomplete_uploads(storage)
    storage.flush()
    return orphans


def _verify(storage: ObjectStorage) -> tuple[int, int, set[str]]:
    """(checkpoints loaded, corrupt or missing objects, keys the manifest names)."""
    manifest = json.loads(storage.read("manifest.json"))
    named, corrupt = {"manifest.json"}, 0
    for checkpoint in manifest["checkpoints"]:
        for name, expected in checkpoint["files"].items():
            key = f"{checkpoint['id']}/{name}"
            named.add(key)
            try:
                with storage.open(key) as stream:
                    digest = hashlib.sha256()
                    while chunk := stream.read(2**20):
                        digest.update(chunk)
            except FileNotFoundError:
                corrupt += 1
                continue
            corrupt += digest.hexdigest() != expected["sha256"]
    return len(manifest["checkpoints"]), corrupt, named


def _assert_consistent_and_swept(url: str, cache: Path) -> int:
    """0 corrupt; the dry run lists the orphans and removes nothing; the sweep leaves 0."""
    storage = ObjectStorage(url, cache)
    try:
        loaded, corrupt, named = _verify(storage)
        assert loaded >= 1 and corrupt == 0
        listed = unnamed_objects(storage, named)
        assert unnamed_objects(storage, named) == listed, "the dry run removed something"
        assert remove_unnamed_objects(storage, named) == listed
        assert unnamed_objects(storage, named) == []
        assert _verify(storage)[1] == 0
        return len(listed)
    finally:
        storage.close()


@pytest.mark.slow
def test_sigkills_at_random_instants_of_uploads_and_manifest_writes(
    s3_url: str, tmp_path: Path, spawn: Callable[..., Any]
) -> None:
    rng = random.Random(22)
    for round_ in range(4):
        writer = _writer(spawn, s3_url, tmp_path / f"w{round_}", 1000, 4 * 2**20)
        assert writer.stdout is not None
        line = writer.stdout.readline()  # one epoch committed: the kill lands in later ones
        assert line.startswith("committed"), writer.stderr.read() if writer.stderr else ""
        time.sleep(rng.uniform(0.05, 1.5))
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
        _assert_consistent_and_swept(s3_url, tmp_path / "check")
