"""Snapshots for background saves: real host copies taken before ``save`` returns.

On CPU, ``state_dict()`` tensors alias the live parameters that the next optimizer step changes,
so a background save must copy them first. One buffer set is enough: at most one save is in
flight and a snapshot waits for it (the writer flushes before staging). The set is kept by a
:class:`SnapshotPool`, one per process by default (:func:`shared_pool`), so the trials of a
study reuse the same memory instead of allocating it anew for each trial.

Tensors on an accelerator are copied into pinned host memory with ``non_blocking=True``, as
PyTorch DCP's ``async_save`` stages them; the writer waits for those copies before it reads.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import torch

from mental_health_hpo.checkpointing.errors import CheckpointError


def _buffer_for(source: torch.Tensor) -> torch.Tensor:
    pin = source.device.type == "cuda"
    return torch.empty(source.shape, dtype=source.dtype, device="cpu", pin_memory=pin)


def copy_into(
    obj: Any, buffers: dict[str, torch.Tensor], path: str = "", touched: set[str] | None = None
) -> Any:
    """A deep copy of ``obj`` with every tensor copied to host memory, into ``buffers`` when an
    entry of the same shape and dtype is there (allocated on first use)."""
    if isinstance(obj, torch.Tensor):
        source = obj.detach()
        if touched is not None:
            touched.add(path)
        buffer = buffers.get(path)
        if buffer is None or buffer.shape != source.shape or buffer.dtype != source.dtype:
            buffer = _buffer_for(source)
            buffers[path] = buffer
        buffer.copy_(source, non_blocking=source.device.type == "cuda")
        return buffer
    if isinstance(obj, Mapping):
        return {
            key: copy_into(value, buffers, f"{path}/{key}", touched) for key, value in obj.items()
        }
    if isinstance(obj, tuple):
        return tuple(
            copy_into(value, buffers, f"{path}/{i}", touched) for i, value in enumerate(obj)
        )
    if isinstance(obj, list):
        return [copy_into(value, buffers, f"{path}/{i}", touched) for i, value in enumerate(obj)]
    return obj


class SnapshotLease:
    """The right to use a pool's buffers until :meth:`release`; one lease per pool at a time."""

    def __init__(self, pool: SnapshotPool) -> None:
        self._pool: SnapshotPool | None = pool
        self._copied: Any = None  # a CUDA event recorded after the last device copies
        self._touched: set[str] = set()

    def snapshot(self, name: str, obj: Any) -> Any:
        if self._pool is None:
            raise CheckpointError("snapshot lease was released")
        copied = copy_into(obj, self._pool.buffers, name, self._touched)
        if _has_cuda_tensor(obj):
            # Recorded on the caller's stream, behind the copies and ahead of the next step's
            # kernels: the writer waits for the copies only, not for training's later work.
            self._copied = torch.cuda.Event()
            self._copied.record()
        return copied

    def wait_copied(self) -> None:
        """Block until non-blocking device-to-host copies have landed."""
        if self._copied is not None:
            self._copied.synchronize()
        self._copied = None

    def drop_untouched(self) -> None:
        """Free buffers the last save did not use (another trial's encoder, say)."""
        if self._pool is not None and self._touched:
            for key in set(self._pool.buffers) - self._touched:
                del self._pool.buffers[key]
        self._touched = set()

    def release(self) -> None:
        if self._pool is not None:
            self._pool.release(self)
            self._pool = None


def _has_cuda_tensor(obj: Any) -> bool:
    if isinstance(obj, torch.Tensor):
        return obj.device.type == "cuda"
    if isinstance(obj, Mapping):
        return any(_has_cuda_tensor(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return any(_has_cuda_tensor(v) for v in obj)
    return False


class SnapshotPool:
    """One reusable buffer set, leased to one open background writer at a time.

    Ownership is the lease object itself, never an ``id()``: ids are reused after garbage
    collection, so an id-based holder could hand live buffers to a second writer.
    """

    def __init__(self) -> None:
        self.buffers: dict[str, torch.Tensor] = {}
        self._lease: SnapshotLease | None = None
        self._lock = threading.Lock()

    def acquire(self) -> SnapshotLease:
        with self._lock:
            if self._lease is not None:
                raise CheckpointError(
                    "the snapshot pool is leased to another open background writer; close that "
                    "CheckpointManager first, or give this one its own SnapshotPool()"
                )
            self._lease = SnapshotLease(self)
            return self._lease

    def release(self, lease: SnapshotLease) -> None:
        with self._lock:
            if self._lease is lease:
                self._lease = None

    @property
    def leased(self) -> bool:
        return self._lease is not None

    def clear(self) -> None:
        """Free the buffers (the next snapshot allocates them again)."""
        with self._lock:
            self.buffers = {}

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.buffers.values())


_SHARED = SnapshotPool()


def shared_pool() -> SnapshotPool:
    """The process's pool: every trial a study runs in this process reuses its buffers."""
    return _SHARED
