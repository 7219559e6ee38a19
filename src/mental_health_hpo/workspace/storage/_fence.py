"""The POSIX stand-in for a bucket's ETag preconditions on the manifest (see :mod:`._seam`).

S3 replaces the manifest only ``If-Match`` the ETag a worker last saw, and creates it only
``If-None-Match: *``; a filesystem has no conditional rename. So a :class:`Fence` remembers the
manifest version one storage first read or last wrote (device, inode, size, mtime: what a new
file of the same name cannot share), and a commit checks it just before the rename, under an
exclusive ``flock`` on the folder (:func:`folder_locked`) so two writers that both pass the
check cannot both rename. A worker that stalled while its trial was taken over thus reads the
successor's manifest but cannot replace it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from mental_health_hpo.workspace.storage._errors import TrialTakenOverError

#: What a :class:`LocalStorage` knows of its fence key: (device, inode, size, mtime) of the
#: version it first saw or last wrote; :data:`ABSENT` when it saw none. A rename keeps all four
#: (a link or a rename changes a file's ctime, not its mtime).
Signature = tuple[int, int, int, int]
ABSENT: Signature = (0, 0, -1, 0)


def signature(stat: os.stat_result) -> Signature:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


class Fence:
    """The POSIX stand-in for the bucket's ETag preconditions on the manifest (see the module
    docstring): what one storage knows of the fence key, and the check before it changes it."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.known: Signature | None = None

    def saw(self, signature: Signature) -> None:
        """A read found ``signature``; only the first read counts (see the module docstring)."""
        if self.known is None:
            self.known = signature

    def open(self, path: Path) -> BinaryIO:
        """Open the fence key for reading; the first read sets what this storage knows."""
        try:
            stream = path.open("rb")
        except FileNotFoundError:
            self.saw(ABSENT)
            raise
        self.saw(signature(os.fstat(stream.fileno())))  # what was read, not a later version
        return stream

    def check(self, path: Path, what: str) -> None:
        """Raise :class:`TrialTakenOverError` unless ``path`` is still the version known."""
        if self.known is None:
            return
        try:
            current = signature(path.stat())
        except FileNotFoundError:
            current = ABSENT
        if current != self.known:
            raise TrialTakenOverError(
                f"{path} changed since this worker last read or committed it: another worker "
                f"commits to this trial now (its lease expired and it was taken over); not "
                f"applying {what}"
            )


@contextlib.contextmanager
def folder_locked(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on the folder itself while a fenced commit checks and renames, so
    two writers that both pass the check cannot both rename (POSIX has no conditional rename).
    A filesystem without locks keeps the check, unlocked; across hosts the lease decides."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # drops the lock


def publish(tmp: Path, target: Path, no_clobber: bool, *, fenced: bool) -> None:
    """Rename ``tmp`` over ``target`` or, ``no_clobber``, link it there (EEXIST: the key exists,
    :class:`FileExistsError`; for the fenced manifest, :class:`TrialTakenOverError`)."""
    if not no_clobber:
        tmp.replace(target)
        return
    try:
        os.link(tmp, target)  # EEXIST when the key exists: the race is lost
    except FileExistsError:
        if fenced:
            raise TrialTakenOverError(
                f"{target} was created by another worker since this one saw none: the trial "
                "was taken over; not replacing it"
            ) from None
        raise
    tmp.unlink()
