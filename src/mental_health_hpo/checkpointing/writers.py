"""Who writes a checkpoint, and when: one protocol, a synchronous and a background writer.

The manager decides *what* to save; a writer decides *when* the bytes are written and what
must be copied first (Lightning's ``CheckpointIO`` / ``AsyncCheckpointIO`` split). A synchronous
writer runs the job before ``save`` returns, so it streams from the live tensors and copies
nothing. The background writer first stages the state into one reused snapshot buffer set, since
the next optimizer step changes the live tensors while the write is in flight.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from mental_health_hpo.checkpointing.async_writer import AsyncWriter
from mental_health_hpo.checkpointing.options import WriterKind
from mental_health_hpo.checkpointing.snapshot import SnapshotLease, SnapshotPool, shared_pool

#: A save job writes its bytes and returns the step that makes them durable and commits them.
SaveJob = Callable[[], Callable[[], None]]


class CheckpointWriter(Protocol):
    """Runs save jobs; re-raises a failed job's error at the next call, never drops it."""

    background: bool

    def stage(self, name: str, obj: Any) -> Any:
        """What the job may read later: the live object, or a snapshot of it."""
        ...

    def submit(self, job: SaveJob) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class SyncWriter:
    """Runs each job at once, in the caller's thread."""

    background = False

    def stage(self, name: str, obj: Any) -> Any:
        return obj

    def submit(self, job: SaveJob) -> None:
        job()()

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


class BackgroundWriter:
    """At most one job in flight on a writer thread; the state is snapshotted before it runs."""

    background = True

    def __init__(self, pool: SnapshotPool | None = None) -> None:
        self._lease: SnapshotLease = (pool or shared_pool()).acquire()
        self._thread = AsyncWriter()

    def stage(self, name: str, obj: Any) -> Any:
        # The previous job may still read the buffers: wait for it before overwriting them.
        self._thread.flush()
        return self._lease.snapshot(name, obj)

    def submit(self, job: SaveJob) -> None:
        self._lease.drop_untouched()

        def run() -> None:
            self._lease.wait_copied()  # device -> pinned host copies issued non-blocking
            job()()

        self._thread.submit(run)

    def flush(self) -> None:
        self._thread.flush()

    def close(self) -> None:
        try:
            self._thread.close()
        finally:
            self._lease.release()


class DeferredSyncWriter:
    """Writes and hashes in the caller's thread, from the live tensors (no snapshot), then
    fsyncs, renames and commits on a thread.

    Once ``write`` has returned, the kernel holds the bytes, so the next optimizer step cannot
    change them; what is left is waiting for the disk, which costs no CPU. This is the choice
    for CPU training, where a writer thread that serializes would take cores from training.
    """

    background = True

    def __init__(self) -> None:
        self._thread = AsyncWriter(name="checkpoint-fsync")

    def stage(self, name: str, obj: Any) -> Any:
        return obj

    def submit(self, job: SaveJob) -> None:
        self._thread.flush()  # the previous save is committed before this one writes
        self._thread.submit(job())

    def flush(self) -> None:
        self._thread.flush()

    def close(self) -> None:
        self._thread.close()


def state_on_accelerator(weights: dict[str, torch.Tensor]) -> bool:
    return any(t.device.type != "cpu" for t in weights.values())


def make_writer(
    kind: WriterKind, on_accelerator: bool, pool: SnapshotPool | None = None
) -> CheckpointWriter:
    """The writer for ``kind``. ``auto``: a snapshot written in the background where training
    runs on an accelerator, a write in place with the fsync deferred on CPU."""
    if kind == "async" or (kind == "auto" and on_accelerator):
        return BackgroundWriter(pool)
    if kind in ("deferred", "auto"):
        return DeferredSyncWriter()
    return SyncWriter()
