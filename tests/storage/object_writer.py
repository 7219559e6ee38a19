"""A checkpoint writer on a bucket, run as a child process that tests SIGKILL.

It commits the way the checkpoint core does through the Storage seam: each epoch's data objects
(hashed with SHA-256 as they stream), then the manifest naming them with their hashes, then the
retention delete of the epoch before. ``python object_writer.py URL CACHE EPOCHS SIZE_BYTES``;
prints ``committed <epoch>`` after each manifest reached the bucket.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

from mental_health_hpo.workspace.storage import ObjectStorage

FILES = ("model.safetensors", "training_state.pt")


def main(url: str, cache: str, epochs: int, size: int) -> None:
    storage = ObjectStorage(url, cache)
    try:
        kept = json.loads(storage.read("manifest.json"))["checkpoints"]
    except FileNotFoundError:
        kept = []
    first = max((c["epoch"] for c in kept), default=0) + 1
    for epoch in range(first, first + epochs):
        ckpt = f"ckpt-e{epoch:04d}"
        files = {}
        for name in FILES:
            staged = storage.stage(f"{ckpt}/{name}")
            digest = hashlib.sha256()
            for _ in range(max(1, size // 2**20)):
                chunk = os.urandom(min(size, 2**20))
                digest.update(chunk)
                staged.write(chunk)
            files[name] = {"sha256": digest.hexdigest(), "size": staged.commit()}
        dropped, kept = kept[:-1], [*kept[-1:], {"id": ckpt, "epoch": epoch, "files": files}]
        storage.put("manifest.json", json.dumps({"checkpoints": kept}).encode())
        for old in dropped:
            storage.delete_prefix(old["id"])
        storage.flush()
        print(f"committed {epoch}", flush=True)
    storage.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
