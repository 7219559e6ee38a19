"""Crash-safe writes: temp file beside the target, fsync, ``os.replace``, fsync the directory.

The temp file lives in the target directory (never /tmp) so the rename stays on one filesystem
and is atomic; a crash at any instant leaves the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from mental_health_hpo.crash_points import crash_point
from mental_health_hpo.workspace.layout import TEMP_PREFIX as TMP_PREFIX
from mental_health_hpo.workspace.layout import is_temp_name as is_temp_name


def temp_path_for(target: Path) -> Path:
    """A unique temp name in the target's own directory."""
    return target.parent / f"{TMP_PREFIX}{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


def fsync_dir(directory: str | Path) -> None:
    """Make a rename or unlink in ``directory`` durable (no-op where dirs cannot be opened)."""
    try:
        fd = os.open(str(directory), os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def atomic_write_file(
    target: str | Path, writer: Callable[[BinaryIO], object], point: str | None = None
) -> None:
    """Write via ``writer(handle)`` to a temp file, fsync it, rename it over ``target``.

    ``point``: the name of the crash point (:mod:`mental_health_hpo.crash_points`) between the
    durable temp file and the rename, for the chaos test.
    """
    target = Path(target)
    tmp = temp_path_for(target)
    try:
        with tmp.open("xb") as handle:
            writer(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if point is not None:
            crash_point(point)
        tmp.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(
    target: str | Path, data: bytes | memoryview, point: str | None = None
) -> None:
    """Atomically replace ``target`` with ``data`` (``point``: see :func:`atomic_write_file`)."""
    atomic_write_file(target, lambda handle: handle.write(data), point)


def make_dir_durable(directory: str | Path) -> None:
    """Create ``directory`` (and parents) and fsync its parent so the entry survives a crash."""
    directory = Path(directory)
    missing = [p for p in [directory, *directory.parents] if not p.exists()]
    directory.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        fsync_dir(created.parent)


def remove_durably(path: str | Path) -> None:
    """Unlink a file and fsync its directory; a missing file is fine (idempotent prune)."""
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fsync_dir(path.parent)
