"""SHA-256 of files and bytes: the manifest names each file with its digest, checked on load."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 4 * 1024 * 1024


def sha256_bytes(data: bytes | memoryview) -> str:
    """Hex SHA-256 of an in-memory payload (hashed once, before it is written)."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks so large checkpoints do not double memory."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
