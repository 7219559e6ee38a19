"""Checkpoints on object storage (S3 and S3-compatible stores, through fsspec/s3fs): the
:class:`Storage` seam's remote backend, with the local disk as a bounded, write-behind cache.

Why this shape:

* **Local first, then the bucket.** A staged object is a file in the local cache (the training
  thread never waits on the network); its commit makes it durable there and queues its upload.
  One uploader thread applies the queue in order, so the data objects a manifest names are in the
  bucket before the manifest is (a commit is a key written last: the bucket has no rename). The
  first failed upload stops the queue: nothing queued after it (the manifest naming it above all)
  reaches the bucket, and the error is raised by the next call, as the writer threads do.
* **The bucket is the truth.** An object this storage committed itself is read from the cache
  while its copy is there (the manifest, read before each commit, always is: no wait for the
  network, and a memory-mappable path). Everything else, and every listing, first waits
  for the queue and asks the bucket, so another worker's commits are seen, and a trial taken over
  on a machine whose cache is empty (or stale) resumes from what was committed. The cache is
  wiped when the storage opens and removed on :meth:`close`; an object leaves it once uploaded
  (the small files beside the manifest stay), and a new checkpoint waits for the previous one's
  uploads. A worker's local disk thus holds about one full checkpoint of its running trial (two
  when the uploads lag a whole epoch), however many trials it runs and however many checkpoints
  retention keeps in the bucket; retention's deletes drop local copies at once and the bucket's
  in queue order.
* **Commits are conditional, by the store's own means** (``_bucket_preconditions``): ``if_absent``
  is ``If-None-Match: *``, decided by the bucket at once (a lost race is told to the caller);
  the manifest is replaced only ``If-Match`` the ETag this worker last saw; a checkpoint's
  objects are created only if absent; deletes and copies are fenced by the manifest's ETag. A
  worker that lost its trial (the lease decides) fails instead of overwriting or deleting its
  successor's checkpoints.
* **No hand-written S3 client:** fsspec with s3fs (``pip install '.[s3]'``); endpoint and keys
  the ecosystem's way (``AWS_ENDPOINT_URL``, ...); GCS (generation preconditions) not yet.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, cast

from mental_health_hpo.crash_points import crash_point
from mental_health_hpo.workspace.layout import MANIFEST_NAME
from mental_health_hpo.workspace.storage._bucket import bucket_filesystem, children_of, keys_under
from mental_health_hpo.workspace.storage._bucket_preconditions import WriteConditions as Conditions
from mental_health_hpo.workspace.storage._bucket_preconditions import is_precondition_failure
from mental_health_hpo.workspace.storage._seam import (
    Entry,
    LocalFile,
    LocalStorage,
    Storage,
    put_staged,
)

Keys = list[str]  # inside the class, ``list`` is :meth:`ObjectStorage.list`


#: Objects up to this size are uploaded in one request, which carries the conditions.
ONE_SHOT_BYTES = 64 * 2**20


class UploadFailedError(OSError):
    """An earlier upload to the bucket failed; nothing queued after it was uploaded."""


class _CachedObject:
    """A staged object: written to the local cache, uploaded after its local commit."""

    def __init__(self, storage: ObjectStorage, key: str, local: LocalFile) -> None:
        self.key = key
        self._storage = storage
        self._local = local

    def write(self, data: bytes | memoryview) -> int:
        return self._local.write(data)

    def commit(self, *, if_absent: bool = False) -> int:
        size = self._local.commit()
        storage = self._storage
        if if_absent:
            storage._create(self.key)
            storage._committed_here(self.key)
        else:
            version = storage._committed_here(self.key)
            storage._enqueue(lambda key: storage._upload(key, version), self.key)
        return size

    def discard(self) -> None:
        self._local.discard()


class ObjectStorage:
    """A :class:`Storage` whose keys live under ``url`` (``s3://bucket/prefix``), cached in
    ``cache_dir`` (see the module docstring). Call :meth:`close` when the trial ends: it waits
    for the uploads, re-raises a failed one, and removes the local cache."""

    def __init__(
        self,
        url: str,
        cache_dir: str | Path,
        filesystem: Any = None,
        fence_key: str = MANIFEST_NAME,
    ) -> None:
        scheme, _, rest = url.partition("://")
        if scheme != "s3" or not rest:
            # The conditional writes below are S3's (If-None-Match, If-Match, ETags).
            raise ValueError(f"{url!r} is no S3 URL (s3://bucket/prefix)")
        self.url = url.rstrip("/")
        self.fs = filesystem if filesystem is not None else bucket_filesystem(scheme)
        #: ``bucket/prefix``: where the keys live, as fsspec names it.
        self.root = rest.strip("/")
        self.cache_dir = Path(cache_dir)
        shutil.rmtree(self.cache_dir, ignore_errors=True)  # a stale cache is never read
        self.cache = LocalStorage(self.cache_dir)
        self._uploader = ThreadPoolExecutor(1, thread_name_prefix="object-storage-upload")
        self._last: Future[None] | None = None
        self._failure: BaseException | None = None
        self.conditions = Conditions(fence_key)
        #: Keys committed through this storage and still in the cache: read locally.
        self._own: set[str] = set()
        self._own_lock = threading.Lock()
        self._versions: dict[str, int] = {}
        #: The checkpoint (top-level prefix) written last: a new one waits for its uploads.
        self._newest: str | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the write-behind queue
    def _remote(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def _enqueue(self, job: Callable[[str], None], key: str) -> None:
        def run() -> None:
            if self._failure is not None:
                return  # the queue stopped at its first failure
            try:
                job(key)
            except BaseException as error:
                self._failure = error
                raise

        with self._lock:
            self._raise_failure()
            self._last = self._uploader.submit(run)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise UploadFailedError(
                f"an upload to {self.url} failed ({type(self._failure).__name__}: "
                f"{self._failure}); nothing queued after it reached the bucket"
            ) from self._failure

    def flush(self) -> None:
        """Wait until every queued upload and delete reached the bucket; raise the first error."""
        last = self._last
        if last is not None:
            with contextlib.suppress(BaseException):
                last.result()
        self._raise_failure()

    def close(self) -> None:
        """Flush, stop the uploader and drop the local cache (everything is in the bucket)."""
        try:
            self.flush()
        finally:
            self._uploader.shutdown(wait=True)
            shutil.rmtree(self.cache_dir, ignore_errors=True)

    def _committed_here(self, key: str) -> int:
        """``key`` is committed in the cache; returns its version (a later commit of the same
        key bumps it, so the upload of an older version never evicts a newer copy)."""
        with self._own_lock:
            self._own.add(key)
            version = self._versions[key] = self._versions.get(key, 0) + 1
        return version

    def _evict(self, key: str, version: int) -> None:
        """Drop an uploaded object's cached copy (the bucket serves it from now on); the small
        files beside the manifest (no ``/`` in their key) stay: they are read every commit."""
        if "/" not in key:
            return
        with self._own_lock:
            if self._versions.get(key) != version:
                return  # committed again since: the newer copy is not uploaded yet
            self._own.discard(key)
        self.cache.delete(key)

    def _check_fence(self, key: str) -> None:
        def current_etag(fence: str) -> str:
            try:
                return str(self.fs.info(self._remote(fence)).get("ETag", ""))
            except FileNotFoundError:
                return ""  # ABSENT

        self.conditions.check_fence(current_etag, self.url, key)

    def _fenced(self, job: Callable[[str], None]) -> Callable[[str], None]:
        """``job`` run only while the fence key in the bucket is the one this storage knows."""

        def run(key: str) -> None:
            self._check_fence(key)
            job(key)

        return run

    def _upload(self, key: str, version: int) -> None:
        local = self.cache_dir / key
        try:
            size = local.stat().st_size
        except FileNotFoundError:
            return  # deleted since it was queued: its remote delete is queued after this
        crash_point("object_upload")
        conditions = self.conditions.for_upload(key)
        if size <= ONE_SHOT_BYTES:
            reply = self.fs.pipe_file(self._remote(key), local.read_bytes(), **conditions)
            self.conditions.wrote(key, reply)
        else:  # multipart, with s3fs's concurrency; s3fs can only condition it on absence
            mode = "create" if "IfNoneMatch" in conditions else "overwrite"
            self.fs.put_file(str(local), self._remote(key), mode=mode)
            self.conditions.wrote(key, None)
        self._evict(key, version)

    def _create(self, key: str) -> None:
        """Upload ``key`` only if the bucket has none (If-None-Match: *), now, after the queue."""
        self.flush()
        local = self.cache_dir / key
        try:
            if local.stat().st_size <= ONE_SHOT_BYTES:
                reply = self.fs.pipe_file(self._remote(key), local.read_bytes(), mode="create")
                self.conditions.wrote(key, reply)
            else:
                self.fs.put_file(str(local), self._remote(key), mode="create")
                self.conditions.wrote(key, None)
        except Exception as error:
            if is_precondition_failure(error):
                with self._own_lock:
                    self._own.discard(key)
                self.cache.delete(key)  # the bucket's object won: ours never existed
                raise FileExistsError(f"{self.describe(key)} exists") from error
            raise

    # ------------------------------------------------------------------ Storage
    def stage(self, key: str) -> _CachedObject:
        """Start writing ``key`` in the cache. The first object of a new checkpoint (a new
        top-level prefix) first waits for the uploads queued so far: at most one checkpoint
        is uploading while the next is written, so the cache holds at most two, and one when
        the uploads keep up with training (each object leaves the cache once uploaded)."""
        prefix, slash, _ = key.partition("/")
        if slash and prefix != self._newest:
            self.flush()
            self._newest = prefix
        return _CachedObject(self, key, self.cache.stage(key))

    def put(self, key: str, data: bytes | memoryview, *, if_absent: bool = False) -> None:
        put_staged(self, key, data, if_absent=if_absent)

    def read(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    def open(self, key: str) -> BinaryIO:
        """A stream of the object: the cached copy of one this storage committed, else the
        bucket's (its ranged reads pinned to the ETag seen on open)."""
        with self._own_lock:  # an eviction deletes only after taking the key out of _own
            if key in self._own:
                return self.cache.open(key)
        self.flush()
        try:
            stream = self.fs.open(self._remote(key), "rb")
        except FileNotFoundError:
            self.conditions.saw(key, None)
            raise
        self.conditions.saw(key, stream.details.get("ETag"))
        return cast(BinaryIO, stream)

    def exists(self, key: str) -> bool:
        if key in self._own:
            return True
        self.flush()
        return bool(self._keys_under(key))

    def size(self, key: str) -> int:
        with self._own_lock:
            if key in self._own:
                return self.cache.size(key)
        self.flush()
        info = self.fs.info(self._remote(key))
        if info.get("type") != "file":
            raise FileNotFoundError(self.describe(key))
        return int(info["size"])

    def list(self, prefix: str = "") -> list[Entry]:
        self.flush()
        return children_of(self._remote(prefix), self._keys_under(prefix))

    def _keys_under(self, prefix: str) -> Keys:
        return keys_under(self.fs, self._remote(prefix))

    def delete(self, key: str) -> None:
        with self._own_lock:
            self._own.discard(key)
        self.cache.delete(key)
        self.conditions.forget(key)
        self._enqueue(self._fenced(self._delete_remote), key)

    def _delete_remote(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._remote(key))

    def delete_prefix(self, prefix: str) -> None:
        with self._own_lock:
            self._own -= {k for k in self._own if k == prefix or k.startswith(prefix + "/")}
        self.cache.delete_prefix(prefix)
        self.conditions.forget_under(prefix)
        self._enqueue(self._fenced(self._delete_prefix_remote), prefix)

    def _delete_prefix_remote(self, prefix: str) -> None:
        keys = self._keys_under(prefix)
        if keys:
            self.fs.rm(keys)

    def copy(self, source: str, target: str) -> None:
        """A server-side copy, queued after the source's upload; a missing source raises
        :class:`FileNotFoundError` here, as on a filesystem, not later in the queue."""
        with self._own_lock:
            cached = source in self._own
            if cached:
                self.cache.copy(source, target)
                self._own.add(target)
        if not cached:
            self.size(source)  # after the queue: raises FileNotFoundError when absent
            with self._own_lock:
                self._own.discard(target)
            self.cache.delete(target)
        self.conditions.forget(target)
        copy = self._fenced(lambda key: self.fs.copy(self._remote(source), self._remote(key)))
        self._enqueue(copy, target)

    def move(self, source: str, target: str) -> None:
        """Copy, then delete, each key under ``source`` (only sets corrupt data aside)."""
        self.flush()
        self._check_fence(source)
        remote_source = self._remote(source)
        keys = self._keys_under(source)
        if not keys:
            raise FileNotFoundError(self.describe(source))
        for key in keys:
            moved = self._remote(target) + key[len(remote_source) :]
            self.fs.copy(key, moved)
        self.fs.rm(keys)
        with self._own_lock:
            self._own -= {k for k in self._own if k == source or k.startswith(source + "/")}
        self.cache.delete_prefix(source)

    def local_path(self, key: str) -> Path | None:
        """The cached file of an object this storage committed (memory-mappable); None for the
        root (no local folder) and for what only the bucket holds (loads stream via ``open``)."""
        with self._own_lock:
            return self.cache.local_path(key) if key in self._own else None

    def describe(self, key: str) -> str:
        return f"{self.url}/{key}" if key else self.url


def open_storage(location: str | Path, cache_dir: str | Path) -> Storage:
    """The :class:`Storage` of a checkpoints folder, or of an S3 URL cached in ``cache_dir``."""
    text = str(location)
    if "://" in text and not text.startswith("file://"):
        return ObjectStorage(text, cache_dir)
    return LocalStorage(Path(text.removeprefix("file://")))
