"""Who may write what in a bucket: the preconditions of the object-store backend's writes.

Why a module of its own: a bucket shared by workers has no lock and no rename, so every write
that could race carries a condition the store itself checks (S3's ``If-None-Match: *`` and
``If-Match: <ETag>``), and the conditions follow from what this worker last saw of each key:

* a key it saw absent is created only if still absent; a key it read or wrote is replaced only
  if its ETag is still the one it saw (a worker that lost its trial cannot replace the
  successor's manifest);
* a key under a checkpoint's prefix that it never saw is created only if absent: the core writes
  a checkpoint's objects once, so a second writer of the same checkpoint id fails;
* deletes and copies cannot carry a condition on every store, so they are fenced: applied only
  while the fence key (the manifest) still has the ETag this worker knows.
"""

from __future__ import annotations

from collections.abc import Callable

from mental_health_hpo.workspace.storage._errors import TrialTakenOverError

#: What a worker knows of a key: an ETag, ABSENT (it saw no object), OURS (it wrote the key
#: without learning its ETag: a multipart upload), or nothing (never seen).
ABSENT = ""
OURS = "ours"


class OwnershipLostError(TrialTakenOverError, OSError):
    """The fence key (the manifest) changed in the bucket since this worker last wrote or read
    it: another worker commits here now, so this one deletes and copies nothing more."""


def is_precondition_failure(error: BaseException) -> bool:
    """The store answered 412 (a conditional write lost), whatever the client made of it."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, FileExistsError):
            return True
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = response.get("Error", {}).get("Code")
            if status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return True
        seen = seen.__cause__ or seen.__context__
    return False


class WriteConditions:
    """The ETags one worker has seen, and the conditions of its next writes."""

    def __init__(self, fence_key: str) -> None:
        self.fence_key = fence_key
        self._etags: dict[str, str] = {}

    def saw(self, key: str, etag: object) -> None:
        """A read of ``key`` answered ``etag`` (None: the key is absent)."""
        if etag is None:
            self._etags[key] = ABSENT
        elif isinstance(etag, str):
            self._etags[key] = etag

    def wrote(self, key: str, reply: object) -> None:
        """A write of ``key`` succeeded with ``reply`` (the store's answer, with its ETag)."""
        etag = reply.get("ETag") if isinstance(reply, dict) else None
        self._etags[key] = etag if isinstance(etag, str) else OURS

    def forget(self, key: str) -> None:
        self._etags.pop(key, None)

    def forget_under(self, prefix: str) -> None:
        for known in [k for k in self._etags if k == prefix or k.startswith(prefix + "/")]:
            self._etags.pop(known, None)

    def for_upload(self, key: str) -> dict[str, str]:
        """The precondition of the next upload of ``key`` (S3 request parameters)."""
        etag = self._etags.get(key)
        if etag is None:
            return {"IfNoneMatch": "*"} if "/" in key else {}
        if etag == OURS:
            return {}
        return {"IfNoneMatch": "*"} if etag == ABSENT else {"IfMatch": etag}

    def check_fence(self, current_etag: Callable[[str], str], url: str, key: str) -> None:
        """Raise :class:`OwnershipLostError` unless the fence key's ETag in the bucket
        (``current_etag(fence_key)``, ABSENT when missing) is the one this worker knows."""
        known = self._etags.get(self.fence_key)
        if known is None or known == OURS:
            return
        if current_etag(self.fence_key) != known:
            raise OwnershipLostError(
                f"{url}/{self.fence_key} changed in the bucket since this worker last committed "
                f"it: another worker owns {url} now; not applying a delete, copy or move of "
                f"{key!r}"
            )
