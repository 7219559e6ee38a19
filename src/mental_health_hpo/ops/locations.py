"""Where the experiments tree lives: a local (or shared) folder, or an object-store URL.

Why this exists: ``Path("s3://hpo/experiments")`` is a valid relative path, so a URL given as
``hpo.study.experiments_dir`` used to be taken silently as a folder named ``s3:`` in the project,
and a study "on S3" wrote nothing to the bucket. Every setting that names the experiments tree
goes through :func:`parse_location` first: a path stays a path, a URL of a scheme the project
honours stays a URL (never a ``Path``), and any other URL is refused with the key, the value and
what is supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: Object stores reached through fsspec, with the ecosystem's own credentials. Only S3 (and
#: S3-compatible stores: MinIO, SeaweedFS, Ceph): the checkpoint backend's conditional writes are
#: S3's If-None-Match / If-Match; GCS's are generation preconditions, not written yet.
OBJECT_STORE_SCHEMES: tuple[str, ...] = ("s3",)

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$")


class UnsupportedLocationError(ValueError):
    """A setting names the experiments tree with a URL the project cannot honour."""


@dataclass(frozen=True)
class ObjectStoreUrl:
    """``<scheme>://<bucket>/<prefix>``: the experiments tree in a bucket, never a local path.

    Endpoint and keys are not part of it: they come the ecosystem's way (``AWS_ENDPOINT_URL``,
    ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ...).
    """

    scheme: str
    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")

    def child(self, *parts: str) -> ObjectStoreUrl:
        prefix = "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))
        return ObjectStoreUrl(self.scheme, self.bucket, prefix)

    # The few path operations the layouts use (``/``, ``name``, ``parent``), so a study's layout
    # names its keys in a bucket as it names its files in a folder. No ``__fspath__``: ``open``
    # or ``Path`` of a URL fails loudly instead of making a local folder named ``s3:``.
    def __truediv__(self, part: str) -> ObjectStoreUrl:
        return self.child(str(part))

    @property
    def name(self) -> str:
        return self.prefix.rsplit("/", 1)[-1] if self.prefix else self.bucket

    @property
    def parent(self) -> ObjectStoreUrl:
        return ObjectStoreUrl(self.scheme, self.bucket, self.prefix.rpartition("/")[0])


#: Where a study's shared files live: a folder, or a prefix of a bucket.
Location = Path | ObjectStoreUrl


def is_url(value: str | Path) -> bool:
    """``value`` has the form ``<scheme>://...``."""
    return isinstance(value, str) and _URL.match(value) is not None


def _supported() -> str:
    stores = ", ".join(f"{s}://bucket/prefix" for s in OBJECT_STORE_SCHEMES)
    return f"a local or shared folder (absolute, or relative to the project), or {stores}"


def parse_location(value: str | Path, key: str) -> Path | ObjectStoreUrl:
    """``value`` of the setting ``key`` as a folder or an object-store URL.

    ``file://`` URLs are folders. Secrets in the URL (``s3://key:secret@bucket``) are refused,
    as they would end up in logs and run parameters.
    """
    if isinstance(value, Path):
        return value
    match = _URL.match(value)
    if match is None:
        return Path(value)
    scheme, rest = match["scheme"].lower(), match["rest"]
    if scheme == "file":
        return Path("/" + rest.lstrip("/"))
    if scheme not in OBJECT_STORE_SCHEMES:
        raise UnsupportedLocationError(
            f"{key}={value!r}: the scheme {scheme}:// is not supported. Give {_supported()}"
        )
    bucket, _, prefix = rest.partition("/")
    if "@" in bucket or ":" in bucket:
        raise UnsupportedLocationError(
            f"{key}: credentials or an endpoint in the URL are not accepted (they would be "
            f"logged); give {scheme}://bucket/prefix and set the endpoint and keys in the "
            f"environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or in "
            f"conf/local/credentials.yml"
        )
    if not bucket:
        raise UnsupportedLocationError(
            f"{key}={value!r} names no bucket; give {scheme}://bucket/prefix"
        )
    return ObjectStoreUrl(scheme, bucket, prefix.strip("/"))


def as_location(value: str | Path | ObjectStoreUrl, key: str = "location") -> Location:
    """A recorded location (a path or a URL, as ``str`` writes it) back as a :data:`Location`."""
    if isinstance(value, ObjectStoreUrl):
        return value
    return parse_location(value, key)


def local_folder(value: str | Path, key: str) -> Path:
    """``value`` of ``key`` as a local folder, for the places that only work on a filesystem;
    an object-store URL is refused there with what to do instead, never taken as a path."""
    location = parse_location(value, key)
    if isinstance(location, ObjectStoreUrl):
        raise UnsupportedLocationError(
            f"{key}={value!r}: this works on a local or shared folder only, not on "
            f"{location.scheme}:// object storage yet (docs/distributed.md, 'Object storage'); "
            f"give a folder (NFS, a ReadWriteMany volume) for many hosts"
        )
    return location
