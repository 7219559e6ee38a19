"""How this package talks to a bucket: its fsspec filesystem, and listings built from keys.

Both bucket-backed storages (a trial's :class:`ObjectStorage` and a study's ``BucketFolder``)
list the same way: a bucket has no folders, so a "folder" is the set of keys under a prefix,
and a store's folder markers and emptied folders (SeaweedFS keeps both) are not children, as
on S3 itself.
"""

from __future__ import annotations

from typing import Any

from mental_health_hpo.workspace.storage._seam import Entry


def bucket_filesystem(scheme: str) -> Any:
    """The fsspec filesystem of ``scheme`` (``s3``), with no listings cache: other workers
    change the bucket, so each listing must be fresh."""
    try:
        import fsspec
    except ImportError as error:  # pragma: no cover - fsspec comes with the s3 extra
        raise ImportError("object storage needs fsspec: pip install '.[s3]'") from error
    try:
        return fsspec.filesystem(scheme, use_listings_cache=False, skip_instance_cache=True)
    except ImportError as error:
        raise ImportError(f"{scheme}:// storage needs s3fs: pip install '.[s3]'") from error


def keys_under(fs: Any, remote: str) -> list[str]:
    """Every object key (``bucket/...``) that is ``remote`` or under ``remote/``."""
    try:
        found = fs.find(remote, withdirs=False, detail=True)
    except FileNotFoundError:
        return []
    return sorted(
        name
        for name, info in found.items()
        if info.get("type") == "file"
        and not name.endswith("/")
        and (name == remote or name.startswith(remote + "/"))
    )


def children_of(remote: str, keys: list[str]) -> list[Entry]:
    """The children of ``remote`` derived from the object keys under it."""
    children: dict[str, bool] = {}
    for key in keys:
        if key == remote:
            continue  # the object itself: an object has no children
        name, _, deeper = key[len(remote) + 1 :].partition("/")
        children[name] = children.get(name, False) or bool(deeper)
    return [Entry(name, is_prefix) for name, is_prefix in sorted(children.items())]
