"""The orphan sweep of a checkpoints store on a bucket, dry run first.

A killed upload leaves objects that no committed manifest names (the manifest is written last),
and, for large objects, incomplete multipart uploads that the bucket keeps (and bills) but never
lists. The start-up sweep of the checkpoint core removes the first kind when a manager opens the
trial; these functions let an operator see them first, and remove both.
"""

from __future__ import annotations

from typing import Any

from mental_health_hpo.checkpointing._manifest import read_manifest
from mental_health_hpo.checkpointing._recovery import _uncommitted, sweep_uncommitted
from mental_health_hpo.workspace.storage import Keys, ObjectStorage, Storage


def uncommitted_objects(storage: Storage) -> Keys:
    """Keys of one checkpoints store that its committed manifest does not name (what a killed
    upload left), by the core's own rule (the start-up sweep's). Listing only: the dry run; the
    manager's start-up sweep, or :func:`remove_uncommitted_objects`, removes them."""
    return [key for key, _why, _prefix in _uncommitted(storage, read_manifest(storage))]


def remove_uncommitted_objects(storage: Storage) -> Keys:
    """Remove what :func:`uncommitted_objects` lists (and, on a bucket, abort the prefix's
    incomplete multipart uploads); only the trial's owner may: nobody else writes there."""
    removed = sweep_uncommitted(storage, read_manifest(storage))
    if isinstance(storage, ObjectStorage):
        abort_incomplete_uploads(storage)
        storage.flush()
    return removed


def incomplete_uploads(storage: ObjectStorage) -> list[dict[str, Any]]:
    """Multipart uploads under the storage's prefix never completed (a killed writer's)."""
    bucket, _, prefix = storage.root.partition("/")
    uploads = storage.fs.list_multipart_uploads(bucket)
    return [u for u in uploads if str(u.get("Key", "")).startswith(prefix)]


def abort_incomplete_uploads(storage: ObjectStorage) -> int:
    """Abort every incomplete multipart upload under the storage's prefix; returns how many."""
    bucket = storage.root.partition("/")[0]
    uploads = incomplete_uploads(storage)
    for upload in uploads:
        storage.fs.abort_mpu(bucket, upload["Key"], upload["UploadId"])
    return len(uploads)
