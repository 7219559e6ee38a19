"""A study's shared files through the storage seam, in a folder or in a bucket.

Why: a study is read and written by workers that share nothing but the database and the
experiments tree, and that tree may be a bucket (``s3://bucket/prefix``, see
``ops/locations.py``). Everything the study keeps there (trial records, manifests, checkpoints,
the study result, the retention index, the published best checkpoint, the evaluation report)
is named by a :data:`~mental_health_hpo.ops.locations.Location` (a ``Path`` or an
``ObjectStoreUrl``: the layouts join both the same way) and read or written through the
:class:`Storage` that :func:`storage_at` opens there. So no study code branches on "bucket or
folder": it asks a ``Storage``.

Two backends serve a bucket: a running trial's checkpoints go through
:class:`~._object_storage.ObjectStorage` (write-behind local cache, conditional commits, one
uploader in commit order: :func:`open_checkpoint_store`); everything else is small, written
whole by the holder of a lease or of the study lock, and read by any worker, so it goes straight
to the bucket (:class:`BucketFolder`: a PUT is atomic on S3, a reader sees the old object or the
new one).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from mental_health_hpo.ops.locations import Location, ObjectStoreUrl
from mental_health_hpo.workspace.layout import (
    CHECKPOINTS_DIRNAME,
    MANIFEST_NAME,
    TRIAL_PREFIX,
    TrialLayout,
)
from mental_health_hpo.workspace.storage._bucket import bucket_filesystem, children_of, keys_under
from mental_health_hpo.workspace.storage._bucket_preconditions import is_precondition_failure
from mental_health_hpo.workspace.storage._object_storage import ObjectStorage
from mental_health_hpo.workspace.storage._seam import Entry, LocalStorage, Storage, put_staged


class _BufferedObject:
    """A staged object of a :class:`BucketFolder`: bytes in memory, one PUT on commit."""

    def __init__(self, folder: BucketFolder, key: str) -> None:
        self.key = key
        self._folder = folder
        self._buffer: io.BytesIO | None = io.BytesIO()

    def write(self, data: bytes | memoryview) -> int:
        if self._buffer is None:
            raise ValueError(f"{self._folder.describe(self.key)} is closed")
        return self._buffer.write(data)

    def commit(self, *, if_absent: bool = False) -> int:
        if self._buffer is None:
            raise ValueError(f"{self._folder.describe(self.key)} is closed")
        data, self._buffer = self._buffer.getvalue(), None
        self._folder._put(self.key, data, if_absent)
        return len(data)

    def discard(self) -> None:
        self._buffer = None


class BucketFolder:
    """A :class:`Storage` straight on a bucket prefix, for a study's small shared objects.

    No cache and no queue: a write returns once the bucket holds the object (another worker
    reads it next), a read asks the bucket. ``if_absent`` is ``If-None-Match: *``.
    """

    def __init__(self, url: ObjectStoreUrl, filesystem: Any = None) -> None:
        self.url = url
        self.fs = filesystem if filesystem is not None else bucket_filesystem(url.scheme)
        self.root = f"{url.bucket}/{url.prefix}".rstrip("/")

    def _remote(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"storage key {key!r} must be relative and stay under {self.url}")
        return f"{self.root}/{key}" if key else self.root

    def _put(self, key: str, data: bytes, if_absent: bool) -> None:
        try:
            self.fs.pipe_file(self._remote(key), data, mode="create" if if_absent else "overwrite")
        except Exception as error:
            if if_absent and is_precondition_failure(error):
                raise FileExistsError(self.describe(key)) from error
            raise

    def stage(self, key: str) -> _BufferedObject:
        self._remote(key)
        return _BufferedObject(self, key)

    def put(self, key: str, data: bytes | memoryview, *, if_absent: bool = False) -> None:
        put_staged(self, key, data, if_absent=if_absent)

    def read(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    def open(self, key: str) -> BinaryIO:
        return cast(BinaryIO, self.fs.open(self._remote(key), "rb"))

    def exists(self, key: str) -> bool:
        return bool(self._keys_under(key))

    def size(self, key: str) -> int:
        info = self.fs.info(self._remote(key))
        if info.get("type") != "file":
            raise FileNotFoundError(self.describe(key))
        return int(info["size"])

    def _keys_under(self, prefix: str) -> list[str]:
        return keys_under(self.fs, self._remote(prefix))

    def list(self, prefix: str = "") -> list[Entry]:
        """Children derived from the objects under ``prefix`` (folder markers are not)."""
        return children_of(self._remote(prefix), self._keys_under(prefix))

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._remote(key))

    def delete_prefix(self, prefix: str) -> None:
        keys = self._keys_under(prefix)
        if keys:
            self.fs.rm(keys)

    def copy(self, source: str, target: str) -> None:
        """A server-side copy: no byte passes through this host."""
        self.size(source)  # FileNotFoundError when absent, as on a filesystem
        self.fs.copy(self._remote(source), self._remote(target))

    def move(self, source: str, target: str) -> None:
        keys = self._keys_under(source)
        if not keys:
            raise FileNotFoundError(self.describe(source))
        remote_source = self._remote(source)
        for key in keys:
            self.fs.copy(key, self._remote(target) + key[len(remote_source) :])
        self.fs.rm(keys)

    def local_path(self, key: str) -> Path | None:
        return None

    def describe(self, key: str) -> str:
        return str(self.url / key) if key else str(self.url)


def storage_at(location: Location | Storage) -> Storage:
    """The :class:`Storage` whose root is ``location`` (a folder, or a bucket prefix)."""
    if isinstance(location, ObjectStoreUrl):
        return BucketFolder(location)
    if isinstance(location, Path):
        return LocalStorage(location)
    return location


def is_local(location: Location) -> bool:
    """True for a folder (a local or shared filesystem), False for a bucket prefix."""
    return isinstance(location, Path)


@contextlib.contextmanager
def checkpoint_store(checkpoints: Location, cache_dir: Path) -> Iterator[Path | Storage]:
    """What a trial's checkpoint manager writes to while the trial trains: its folder, or, in a
    bucket, an :class:`ObjectStorage` cached in ``cache_dir`` (wiped first).

    On leaving, a bucket store waits for its uploads and removes its cache, so the trial is
    told finished only once the bucket holds what it committed (a failed upload fails the
    trial), and a worker's disk holds no trial it no longer runs. When the block raised, that
    error is the one raised; what was committed is still uploaded, for whoever resumes.
    """
    if not isinstance(checkpoints, ObjectStoreUrl):
        yield checkpoints
        return
    store = ObjectStorage(str(checkpoints), cache_dir)
    try:
        yield store
    except BaseException:
        with contextlib.suppress(Exception):
            store.close()
        raise
    store.close()


def trial_layouts(study: Location) -> list[TrialLayout]:
    """Every trial (``trial_*``) of a study, by name, in a folder or a bucket."""
    storage = storage_at(study)
    return [
        TrialLayout(study / entry.name)
        for entry in storage.list("")
        if entry.is_prefix and entry.name.startswith(TRIAL_PREFIX)
    ]


def committed_checkpoint_dirs(study: Location) -> list[Location]:
    """The checkpoints folder of every trial of a study that committed a manifest."""
    storage = storage_at(study)
    return [
        trial.checkpoints
        for trial in trial_layouts(study)
        if storage.exists(f"{trial.path.name}/{CHECKPOINTS_DIRNAME}/{MANIFEST_NAME}")
    ]


def has_manifest(location: Location) -> bool:
    return storage_at(location).exists(MANIFEST_NAME)
