"""Snapshots for async saves: real CPU copies taken before ``save`` returns.

On CPU, ``state_dict()`` tensors alias the live parameters that the next optimizer step changes,
so an async save must copy them first. A :class:`SnapshotPool` keeps two alternating buffer sets
so that, after the first two saves, a snapshot is a ``copy_`` into memory that already exists
(no allocation, no page faults). The set used two saves ago is free because at most one save is
in flight and each save waits for the previous one before taking its snapshot.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import torch

from mental_health_hpo.checkpointing.errors import CheckpointError


def snapshot(obj: Any, pool: dict[str, torch.Tensor] | None = None, path: str = "") -> Any:
    """A deep copy with every tensor copied to CPU (into ``pool`` buffers when they fit)."""
    if isinstance(obj, torch.Tensor):
        source = obj.detach()
        if pool is None:
            return source.to("cpu", copy=True).contiguous()
        buffer = pool.get(path)
        if buffer is None or buffer.shape != source.shape or buffer.dtype != source.dtype:
            buffer = source.to("cpu", copy=True).contiguous()
            pool[path] = buffer
        else:
            buffer.copy_(source)
        return buffer
    if isinstance(obj, Mapping):
        return {key: snapshot(value, pool, f"{path}/{key}") for key, value in obj.items()}
    if isinstance(obj, tuple):
        return tuple(snapshot(value, pool, f"{path}/{i}") for i, value in enumerate(obj))
    if isinstance(obj, list):
        return [snapshot(value, pool, f"{path}/{i}") for i, value in enumerate(obj)]
    return obj


def as_cpu(obj: Any) -> Any:
    """The same structure with tensors on CPU and contiguous (no copy when they already are)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().contiguous()
    if isinstance(obj, Mapping):
        return {key: as_cpu(value) for key, value in obj.items()}
    if isinstance(obj, tuple):
        return tuple(as_cpu(value) for value in obj)
    if isinstance(obj, list):
        return [as_cpu(value) for value in obj]
    return obj


def unshared(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copy tensors whose storage an earlier entry uses (tied weights): safetensors refuses
    shared storage."""
    seen: set[int] = set()
    result = {}
    for name, tensor in weights.items():
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen:
            tensor = tensor.clone()
        seen.add(pointer)
        result[name] = tensor
    return result


class SnapshotPool:
    """Two alternating buffer sets, reusable by successive managers (e.g. the trials of a study
    run in one process). Only one open manager may hold it at a time."""

    def __init__(self) -> None:
        self._sets: list[dict[str, torch.Tensor]] = [{}, {}]
        self._turn = 0
        self._holder: int | None = None
        self._lock = threading.Lock()

    def acquire(self, owner: object) -> None:
        """Claim the pool for ``owner``; another open owner is an error (buffers in flight)."""
        with self._lock:
            if self._holder is not None and self._holder != id(owner):
                raise CheckpointError("snapshot pool is held by another open CheckpointManager")
            self._holder = id(owner)

    def release(self, owner: object) -> None:
        with self._lock:
            if self._holder == id(owner):
                self._holder = None

    def next_set(self) -> dict[str, torch.Tensor]:
        """The buffer set for the next snapshot (the one not used by the previous save)."""
        buffers = self._sets[self._turn]
        self._turn ^= 1
        return buffers

    def clear(self) -> None:
        """Free the buffers."""
        self._sets = [{}, {}]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for s in self._sets for t in s.values())
