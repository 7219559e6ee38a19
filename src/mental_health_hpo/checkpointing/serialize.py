"""Streaming serialization of one checkpoint's files, hashed when they are made durable.

Nothing here builds a file's bytes in memory. Weights go through safetensors' file API, which
writes each tensor from its own memory (no Python-side copy); the training state goes through
``torch.save`` straight into the temp file beside its target. Making a file durable hashes it in
4 MB chunks, fsyncs it, renames it into place and fsyncs the folder, so a crash leaves the old
file or the new one and never a torn one.

Why the SHA-256 is taken from the written file rather than from the bytes on their way in: once
``write`` has returned, the kernel holds the bytes and the next optimizer step cannot change
them, so the deferred writer can hash them on its thread, beside training, instead of in the
training thread. The hash is SHA-256's cost whichever thread pays it (about 1.7 GB/s here); the
read back comes from the page cache. The digest is also of what is in the file, which is what a
load checks.

Host RAM a save adds is therefore bounded by the largest single tensor that must be made
contiguous or moved off the accelerator, not by the size of the state.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from mental_health_hpo.checkpointing.atomic import fsync_dir, make_dir_durable, temp_path_for
from mental_health_hpo.checkpointing.commit import remove_tree
from mental_health_hpo.checkpointing.errors import UnsafeCheckpointError
from mental_health_hpo.checkpointing.hashing import sha256_file
from mental_health_hpo.checkpointing.layout import STATE_FILE, WEIGHTS_FILE
from mental_health_hpo.checkpointing.manifest import FileEntry


@dataclass(frozen=True)
class WrittenFile:
    """A file that is durable at its final path, with the digest of its bytes."""

    path: Path
    sha256: str
    size: int


@dataclass
class PendingFile:
    """A file whose bytes are written into a temp file beside its target, but not yet durable:
    :meth:`make_durable` hashes it, fsyncs it, renames it into place and fsyncs the folder."""

    tmp: Path
    target: Path

    def make_durable(self) -> WrittenFile:
        digest = sha256_file(self.tmp)
        size = self.tmp.stat().st_size
        _fsync_path(self.tmp)
        self.tmp.replace(self.target)
        fsync_dir(self.target.parent)
        return WrittenFile(self.target, digest, size)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.tmp.unlink()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _contiguous_cpu(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors safetensors can write: on CPU, contiguous, no two sharing storage (tied weights).

    CPU tensors that already are contiguous pass through uncopied.
    """
    seen: set[int] = set()
    result: dict[str, torch.Tensor] = {}
    for name, tensor in weights.items():
        tensor = tensor.detach()
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()
        if not tensor.is_contiguous():
            tensor = tensor.contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen and tensor.numel():
            tensor = tensor.clone()
        seen.add(pointer)
        result[name] = tensor
    return result


def stage_weights(
    target: Path, weights: Mapping[str, torch.Tensor], metadata: Mapping[str, str]
) -> PendingFile:
    """Write ``weights`` as safetensors into a temp file beside ``target``."""
    tmp = temp_path_for(target)
    try:
        save_file(_contiguous_cpu(weights), str(tmp), metadata=dict(metadata))
        return PendingFile(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def stage_torch_state(target: Path, state: Any) -> PendingFile:
    """``torch.save`` ``state`` into a temp file beside ``target``."""
    tmp = temp_path_for(target)
    try:
        with tmp.open("xb") as handle:
            torch.save(state, handle)
        return PendingFile(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@dataclass
class StagedCheckpoint:
    """One checkpoint's files, written, waiting to be hashed and made durable; ``files`` (the
    manifest's entries, with their digests) is filled by :meth:`make_durable`."""

    ckpt: str
    pending: list[PendingFile]
    files: dict[str, FileEntry] = field(default_factory=dict)

    def make_durable(self) -> None:
        for item in self.pending:
            done = item.make_durable()
            name = done.path.name
            self.files[name] = FileEntry(f"{self.ckpt}/{name}", done.sha256, done.size)

    def discard(self) -> None:
        for item in self.pending:
            item.discard()


_SAFE_LEAVES = (str, int, float, bool, type(None), torch.dtype, torch.device, torch.Size)


def check_weights_only_safe(obj: Any, where: str = "training_state") -> None:
    """Raise :class:`UnsafeCheckpointError` for anything ``torch.load(weights_only=True)`` would
    refuse, before anything is written: a resume must never need to unpickle code."""
    if isinstance(obj, (torch.Tensor, *_SAFE_LEAVES)):
        return
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if not isinstance(key, str | int):
                raise UnsafeCheckpointError(f"{where}: key {key!r} is not a str or int")
            check_weights_only_safe(value, f"{where}[{key!r}]")
        return
    if isinstance(obj, list | tuple):
        for index, value in enumerate(obj):
            check_weights_only_safe(value, f"{where}[{index}]")
        return
    raise UnsafeCheckpointError(
        f"{where} is a {type(obj).__name__}: only tensors, numbers, strings, lists, tuples and "
        "dicts load with torch.load(weights_only=True) (see training.seeds.capture_rng_state)"
    )


def stage_checkpoint_files(
    directory: Path,
    ckpt: str,
    epoch: int,
    step: int,
    weights: Mapping[str, torch.Tensor],
    state: Any | None,
) -> StagedCheckpoint:
    """Write one checkpoint's files (weights, and the training state when given) into temp
    files in its folder; :meth:`StagedCheckpoint.make_durable` renames them into place."""
    folder = directory / ckpt
    if folder.exists():  # an uncommitted leftover of the same id
        remove_tree(folder)
    make_dir_durable(folder)
    meta = {"checkpoint_id": ckpt, "epoch": str(epoch), "step": str(step)}
    pending = [stage_weights(folder / WEIGHTS_FILE, weights, meta)]
    try:
        if state is not None:
            pending.append(stage_torch_state(folder / STATE_FILE, state))
    except BaseException:
        pending[0].discard()
        raise
    return StagedCheckpoint(ckpt, pending)
