"""Atomic writes: temp file beside the target, fsynced, renamed; failures leave the old file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mental_health_hpo.workspace import atomic
from mental_health_hpo.workspace.atomic import atomic_write_bytes, atomic_write_file


def test_replaces_content_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_temp_file_lives_beside_target_and_is_fsynced(tmp_path: Path, monkeypatch) -> None:
    seen: list[str] = []
    synced: list[int] = []
    real_fsync = os.fsync

    def spy_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", spy_fsync)

    def writer(handle) -> None:
        seen.append(handle.name)
        handle.write(b"x")

    atomic_write_file(tmp_path / "t", writer)
    assert Path(seen[0]).parent == tmp_path and Path(seen[0]).name.startswith(".tmp-t.")
    assert len(synced) >= 2  # the file, then the directory


def test_failed_write_keeps_old_content(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def broken(handle) -> None:
        handle.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write_file(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_a_manifest_write_killed_after_keeping_the_previous_leaves_no_temp(
    tmp_path: Path,
) -> None:
    """Killed between linking ``manifest.prev.json`` and renaming the new manifest, the two are
    links of one file; the next write must not leave its staged link behind (a rename of a
    link over another link of the same file does nothing)."""
    from mental_health_hpo.checkpointing._manifest import Manifest, write_manifest
    from mental_health_hpo.workspace.storage import LocalStorage

    write_manifest(tmp_path, Manifest(metric_name="f1"))
    # what the killed write had done before it died: the previous manifest kept
    LocalStorage(tmp_path).copy("manifest.json", "manifest.prev.json")
    assert (tmp_path / "manifest.json").samefile(tmp_path / "manifest.prev.json")
    write_manifest(tmp_path, Manifest(metric_name="f1", finished=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "manifest.prev.json"]
    assert not (tmp_path / "manifest.json").samefile(tmp_path / "manifest.prev.json")
