"""The one seam every checkpoint byte passes through: :class:`Storage`, and its POSIX backend.

The checkpoint core (manager, manifest and commit, recovery, verification, orphan sweeps,
serialization) never opens, renames, lists or deletes a file itself; it asks a ``Storage`` for
*keys*: ``/``-separated paths relative to the storage's root (a trial's ``checkpoints`` folder),
such as ``manifest.json`` or ``ckpt-e0001-s000100/model.safetensors``. A key never starts or
ends with ``/``; ``""`` is the root.

The contract is what both a filesystem and an object store can keep:

* **Every write is atomic and durable.** A reader sees the old bytes of a key or the new ones,
  never a torn object, and once :meth:`StagedObject.commit` (or :meth:`Storage.put`) returns, the
  bytes survive a crash. ``if_absent=True`` turns the write into a conditional create that fails
  with :class:`FileExistsError` when the key exists (POSIX: ``link(2)``, S3: ``If-None-Match: *``),
  so two writers racing for one key cannot both win.
* **Another writer's commits are never clobbered.** A key under a prefix that this storage did
  not write is only created (:class:`FileExistsError` when it exists; S3: ``If-None-Match``), and
  the manifest is replaced or copied only while it is the version this storage first saw or last
  wrote (S3: ``If-Match``; POSIX: :mod:`._fence`), else :class:`TrialTakenOverError`: a worker
  whose trial was taken over while it stalled cannot touch its successor's checkpoints.
* **Writing is two phases** (:meth:`Storage.stage`): ``write`` streams the bytes (the caller hashes
  them on their way through, so nothing is read back), ``commit`` makes them durable and visible.
  The deferred writer runs the first phase in the training thread and the second on its own
  thread. On POSIX the first phase fills a temp file beside the target and the second does
  fsync, rename, directory fsync; on S3 the first would upload the parts of a multipart upload
  and the second complete it.
* **A commit is a key written last.** The core commits a checkpoint by writing ``manifest.json``
  after every data object it names is durable (Orbax's commit marker, DCP's ``.metadata``). A
  key the manifest does not name does not exist as far as the core is concerned, and the
  start-up sweep removes it. So no backend needs a rename to commit anything: :meth:`move` is
  only used to set a corrupt checkpoint aside, where copy-then-delete is fine.
* **Folders are prefixes.** :meth:`list` returns the immediate children of a prefix, objects and
  sub-prefixes (S3: ``Delimiter='/'``); deleting a prefix deletes every key under it. Backends
  create "folders" implicitly when a key under them is written.
* **Local paths are a fast path, not a requirement.** :meth:`local_path` returns a filesystem path
  where the backend has one, so a verified load can memory-map the weights; a backend without
  one returns None and the loader reads the bytes through :meth:`open` instead.

Errors: a missing key raises :class:`FileNotFoundError` (``read``, ``open``, ``size``,
``move``, ``copy``); ``delete`` and ``delete_prefix`` of a missing key are no-ops (pruning is
idempotent). Anything else the backend raises (``OSError``, its own errors) passes through.

This module is the whole interface; its signatures are kept stable for the object-store
backend. :class:`LocalStorage` is the POSIX backend used today.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from mental_health_hpo.workspace.atomic import fsync_dir, make_dir_durable
from mental_health_hpo.workspace.layout import MANIFEST_NAME, TEMP_PREFIX
from mental_health_hpo.workspace.storage._fence import (
    ABSENT,
    Fence,
    folder_locked,
    publish,
    signature,
)


@dataclass(frozen=True)
class Entry:
    """One child of a prefix: its last key component, and whether it is a prefix ("folder")."""

    name: str
    is_prefix: bool


class StagedObject(Protocol):
    """An object being written to ``key``: invisible until :meth:`commit`, gone after
    :meth:`discard`. ``write`` is called from one thread at a time, in order; ``commit`` may
    run on another thread than the writes."""

    key: str

    def write(self, data: bytes | memoryview) -> int:
        """Append ``data``; returns its length. The buffer may be reused once this returns."""
        ...

    def commit(self, *, if_absent: bool = False) -> int:
        """Make the bytes durable and visible at ``key`` (replacing what was there, or, with
        ``if_absent``, raising :class:`FileExistsError` if the key exists); returns the size."""
        ...

    def discard(self) -> None:
        """Drop what was written; the key keeps its old bytes. Idempotent."""
        ...


class Storage(Protocol):
    """Where one checkpoints folder's bytes live (see the module docstring for the contract)."""

    def stage(self, key: str) -> StagedObject:
        """Start writing ``key`` in two phases (stream, then commit)."""
        ...

    def put(self, key: str, data: bytes | memoryview, *, if_absent: bool = False) -> None:
        """Write ``data`` to ``key`` atomically and durably (``if_absent``: conditional create)."""
        ...

    def read(self, key: str) -> bytes:
        """The whole object (small ones: manifests, records)."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A binary stream of the object, for chunked hashing or loading; the caller closes it."""
        ...

    def exists(self, key: str) -> bool:
        """True when ``key`` is an object or a non-empty prefix."""
        ...

    def size(self, key: str) -> int:
        """Bytes of an object."""
        ...

    def list(self, prefix: str = "") -> list[Entry]:
        """Immediate children of ``prefix``, sorted by name; empty when it has none."""
        ...

    def delete(self, key: str) -> None:
        """Remove an object durably; a missing key is fine."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Remove every key under ``prefix`` durably; a missing prefix is fine."""
        ...

    def copy(self, source: str, target: str) -> None:
        """Make ``target`` an atomic, durable copy of object ``source`` (a backend may share the
        bytes, e.g. a hard link: objects are never modified in place, only replaced)."""
        ...

    def move(self, source: str, target: str) -> None:
        """Move an object or a whole prefix. Not atomic on object stores (copy, then delete);
        used only to set corrupt or unreadable data aside."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The filesystem path of ``key`` (for memory-mapped loads), or None for a remote store."""
        ...

    def describe(self, key: str) -> str:
        """A path or URL naming ``key``, for messages."""
        ...


# --------------------------------------------------------------------------- POSIX backend
_SYNC_FILE_RANGE_WRITE = 2
_WRITEBACK_EVERY = 16 * 2**20


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """libc's ``sync_file_range`` (Linux), or None: starting writeback while the rest of the
    file is still being written overlaps the disk with the hashing (RocksDB's
    ``bytes_per_sync``), so the final fsync only waits for the tail."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


_sync_file_range = _load_sync_file_range()


def _temp_beside(target: Path) -> Path:
    """A unique temp name in the target's own folder (one filesystem: the rename is atomic)."""
    return target.parent / f"{TEMP_PREFIX}{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


class LocalFile:
    """A :class:`StagedObject` on a filesystem: a temp file beside its target (same filesystem,
    so the rename is atomic), fsynced, renamed into place, the folder fsynced.

    A key under a prefix (a checkpoint's file) that its storage did not write itself
    (``written``: the keys it did) is linked into place, never renamed over one that exists; the
    fence key (``fence``) is replaced only while it is the version the storage knows.
    """

    def __init__(
        self, key: str, target: Path, fence: Fence | None = None, written: set[str] | None = None
    ) -> None:
        self.key = key
        self.target = target
        self._fence = fence
        self._written_keys = written
        self.tmp = _temp_beside(target)
        make_dir_durable(target.parent)
        self._fd: int | None = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._written = 0
        self._synced_to = 0

    def write(self, data: bytes | memoryview) -> int:
        if self._fd is None:
            raise ValueError(f"{self.tmp} is closed")
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            done += os.write(self._fd, view[done:])
        self._written += done
        if _sync_file_range is not None and self._written - self._synced_to >= _WRITEBACK_EVERY:
            start, length = self._synced_to, self._written - self._synced_to
            _sync_file_range(self._fd, start, length, _SYNC_FILE_RANGE_WRITE)
            self._synced_to = self._written
        return done

    def commit(self, *, if_absent: bool = False) -> int:
        if self._fd is None:
            raise ValueError(f"{self.tmp} is closed")
        try:
            os.fsync(self._fd)
            version = signature(os.fstat(self._fd))
        finally:
            fd, self._fd = self._fd, None
            os.close(fd)
        fence = self._fence
        with folder_locked(self.target.parent) if fence is not None else contextlib.nullcontext():
            if fence is not None:
                fence.check(self.target, f"a commit of {self.key}")
                if_absent = if_absent or fence.known == ABSENT
            own = self._written_keys
            no_clobber = if_absent or ("/" in self.key and own is not None and self.key not in own)
            publish(self.tmp, self.target, no_clobber, fenced=fence is not None)
        fsync_dir(self.target.parent)
        if fence is not None:
            fence.known = version
        if self._written_keys is not None:
            self._written_keys.add(self.key)
        return self._written

    def discard(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            self.tmp.unlink()


class LocalStorage:
    """The POSIX :class:`Storage`: keys are paths under ``root``; ``fence_key`` (the manifest)
    is replaced only while it is the version this storage knows (see the module docstring)."""

    def __init__(self, root: str | Path, fence_key: str = MANIFEST_NAME) -> None:
        self.root = Path(root)
        self._fence = Fence(fence_key)
        #: Keys under a prefix this storage committed: only those may it replace.
        self._own: set[str] = set()

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"storage key {key!r} must be relative and stay under {self.root}")
        return self.root / key if key else self.root

    def stage(self, key: str) -> LocalFile:
        fence = self._fence if key == self._fence.key else None
        return LocalFile(key, self._path(key), fence, self._own)

    def put(self, key: str, data: bytes | memoryview, *, if_absent: bool = False) -> None:
        put_staged(self, key, data, if_absent=if_absent)

    def read(self, key: str) -> bytes:
        if key != self._fence.key:
            return self._path(key).read_bytes()
        with self._fence.open(self._path(key)) as stream:
            return stream.read()

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        return self._fence.open(path) if key == self._fence.key else path.open("rb")

    def exists(self, key: str) -> bool:
        path = self._path(key)
        if path.is_dir():
            return any(path.iterdir())
        return path.exists()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def list(self, prefix: str = "") -> list[Entry]:
        path = self._path(prefix)
        try:
            children = sorted(path.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [Entry(c.name, c.is_dir() and not c.is_symlink()) for c in children]

    def delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        fsync_dir(path.parent)
        self._own.discard(key)
        if key == self._fence.key:
            self._fence.known = ABSENT  # removed by this storage itself

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        self._own -= {k for k in self._own if k.startswith(f"{prefix}/")}
        if path.is_symlink() or path.is_file():
            self.delete(prefix)
            return
        if not path.is_dir():
            return
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    child.unlink()
        with contextlib.suppress(OSError):
            path.rmdir()
        fsync_dir(path.parent)

    def copy(self, source: str, target: str) -> None:
        src, dst = self._path(source), self._path(target)
        if source == self._fence.key:
            self._fence.check(src, f"a copy of {source} to {target}")
        with contextlib.suppress(FileNotFoundError):
            if src.samefile(dst):
                return  # linked already (renaming a link over its twin would do nothing)
        staged = _temp_beside(dst)
        make_dir_durable(dst.parent)
        try:
            os.link(src, staged)
        except FileNotFoundError:
            raise
        except OSError:  # a filesystem without hard links: copy the bytes
            self.put(target, src.read_bytes())
            return
        staged.replace(dst)
        fsync_dir(dst.parent)

    def move(self, source: str, target: str) -> None:
        src, dst = self._path(source), self._path(target)
        if source == self._fence.key:
            self._fence.check(src, f"a move of {source} to {target}")
        make_dir_durable(dst.parent)
        src.replace(dst)
        fsync_dir(src.parent)
        fsync_dir(dst.parent)
        if source == self._fence.key:
            self._fence.known = ABSENT  # set aside by this storage itself

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def describe(self, key: str) -> str:
        return str(self._path(key))


def walk(storage: Storage, prefix: str = "") -> Iterator[str]:
    """Every object key under ``prefix``, depth first (a helper over :meth:`Storage.list`)."""
    for entry in storage.list(prefix):
        key = f"{prefix}/{entry.name}" if prefix else entry.name
        if entry.is_prefix:
            yield from walk(storage, key)
        else:
            yield key


def as_storage(location: Storage | str | Path) -> Storage:
    """``location`` itself when it is a :class:`Storage`, else the POSIX backend rooted there
    (so callers that hold a folder path keep working unchanged)."""
    if isinstance(location, str | Path):
        return LocalStorage(location)
    return location


def put_staged(
    storage: Storage, key: str, data: bytes | memoryview, *, if_absent: bool = False
) -> None:
    """``Storage.put`` by the staged path every backend has: write, commit, or discard on error."""
    staged = storage.stage(key)
    try:
        staged.write(data)
        staged.commit(if_absent=if_absent)
    except BaseException:
        staged.discard()
        raise
