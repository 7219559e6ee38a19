"""Streaming serialization of one checkpoint's files, hashed on their way to storage.

Nothing here builds a file's bytes in memory, and nothing reads a file back. The weights are
written in the safetensors format by :func:`write_safetensors` (an 8-byte header length, a JSON
header, then each tensor's bytes straight from its own memory); the training state goes through
``torch.save`` into the same kind of stream. Every byte passes through :class:`HashingStream`,
which feeds it to SHA-256 and to the storage's staged object at once, so the manifest's digest
is of exactly the bytes written. Writing is the first phase of a save (in the caller's thread);
:meth:`StagedCheckpoint.make_durable` is the second (fsync, rename, folder fsync on POSIX), which
the deferred writer runs on its own thread.

Why hash on the way in rather than from the written file: a read back costs a second pass over
every byte (from the page cache at best, from the disk at worst) and was a third of a sync
save's time. SHA-256 runs at about 1.7 GB/s on one core here, about the disk's write + fsync
speed, so large writes are cut into slices and each slice is queued to the stream's own hash
thread before the caller writes it: the disk and the hash each go at their own pace, and the
two files of a checkpoint (weights, then training state) are hashed on two threads at once.
A write returns only when its bytes are hashed, so buffers ``torch.save`` frees after the call
(a tensor copied off an accelerator) are never read late; only the weights' own tensors, which
nothing changes before the save's write step returns, are hashed on while the state is written.

Host RAM a save adds is bounded by the largest single tensor that must be made contiguous or
moved off the accelerator, not by the size of the state.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any, cast

import torch

from mental_health_hpo.checkpointing._errors import UnsafeCheckpointError
from mental_health_hpo.checkpointing._manifest import FileEntry
from mental_health_hpo.crash_points import crash_point
from mental_health_hpo.workspace.layout import STATE_FILE, WEIGHTS_FILE
from mental_health_hpo.workspace.storage import StagedObject, Storage, TrialTakenOverError

#: Writes at least this large are hashed beside the write, in slices of ``_SLICE`` bytes.
_OVERLAP_MIN = 1 << 20
_SLICE = 8 << 20
#: Smaller writes (``torch.save``'s pickle records) are gathered into one buffer of this size.
_GATHER = 1 << 20


def _update_digest(digest: Any, piece: memoryview | bytes | bytearray) -> None:
    """One slice into the digest, on the stream's hash thread (``hashlib`` releases the GIL)."""
    digest.update(piece)


class HashingStream:
    """A write-only binary stream into a staged object that takes the SHA-256 of every byte.

    Each stream hashes on a thread of its own, so two files of one checkpoint (the weights,
    then the training state) are hashed on two cores while the caller writes. ``write`` returns
    once its bytes are hashed and handed to the storage, so the caller may change or free its
    buffer afterwards; :meth:`write_all` with ``wait=False`` lets the hash run on past the call,
    for buffers that stay unchanged until :meth:`finish` (the tensors of the state being saved).
    """

    def __init__(self, staged: StagedObject) -> None:
        self.staged = staged
        self._sha = hashlib.sha256()
        self._gathered = bytearray()
        self._hasher: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        if len(view) < _OVERLAP_MIN:
            self._gathered += view
            self.size += len(view)
            if len(self._gathered) >= _GATHER:
                self._drain()
            return len(view)
        self.write_all([view])
        return len(view)

    def write_all(self, buffers: list[memoryview], *, wait: bool = True) -> None:
        """Write large buffers: every slice is queued to the hash thread first, then written, so
        the disk and the hash each go at their own pace. With ``wait`` the call returns once
        both are done; without it, the buffers must stay unchanged until :meth:`finish`."""
        self._drain()
        slices = [
            view[start : start + _SLICE]
            for view in (memoryview(b).cast("B") for b in buffers)
            for start in range(0, len(view), _SLICE)
        ]
        self._pending += [self._hash(piece) for piece in slices]
        try:
            for piece in slices:
                self.staged.write(piece)
                self.size += len(piece)
        finally:
            if wait:
                self._wait()

    def _hash(self, piece: memoryview | bytearray) -> Future[None]:
        if self._hasher is None:
            self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-hash")
        return self._hasher.submit(_update_digest, self._sha, piece)

    def _wait(self) -> None:
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def _drain(self) -> None:
        if not self._gathered:
            return
        gathered, self._gathered = self._gathered, bytearray()
        if self._pending:  # keep the digest's order: behind the slices still being hashed
            self._pending.append(self._hash(gathered))
        else:
            self._sha.update(gathered)
        self.staged.write(memoryview(gathered))

    def flush(self) -> None:
        """Hand gathered small writes to the storage (``torch.save`` calls this at its end)."""
        self._drain()

    def finish(self) -> None:
        """Wait until every byte is hashed and stop the hash thread; idempotent."""
        try:
            self._drain()
            self._wait()
        finally:
            if self._hasher is not None:
                self._hasher.shutdown(wait=True)
                self._hasher = None

    def hexdigest(self) -> str:
        self.finish()
        return self._sha.hexdigest()


# ------------------------------------------------------------------------ safetensors
_DTYPE_NAMES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
    torch.complex64: "C64",
    torch.uint64: "U64",
    torch.uint32: "U32",
    torch.uint16: "U16",
}


def _in_place(tensor: torch.Tensor) -> bool:
    """True when the tensor's own memory can be written as it is (on CPU, contiguous)."""
    return tensor.device.type == "cpu" and tensor.is_contiguous()


def _cpu_contiguous(tensor: torch.Tensor) -> torch.Tensor:
    """One CPU, contiguous copy of a tensor that is neither."""
    return tensor.detach().cpu().contiguous()


def _raw_bytes(tensor: torch.Tensor) -> memoryview:
    return tensor.reshape(-1).view(torch.uint8).numpy().data


def write_safetensors(
    stream: HashingStream, weights: Mapping[str, torch.Tensor], metadata: Mapping[str, str]
) -> None:
    """Write ``weights`` in the safetensors format (loadable by ``safe_open``), each tensor from
    its own memory. Tied weights are written once per name, as safetensors' loaders expect.

    The layout follows safetensors' own writer: the header padded with spaces to 8 bytes, tensors
    ordered by element size (largest first) then name, so every tensor stays aligned.
    """
    order = sorted(weights.items(), key=lambda item: (-item[1].element_size(), item[0]))
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, tensor in order:
        if tensor.dtype not in _DTYPE_NAMES:
            raise UnsafeCheckpointError(
                f"weights[{name!r}]: dtype {tensor.dtype} has no safetensors name"
            )
        nbytes = tensor.numel() * tensor.element_size()
        header[name] = {
            "dtype": _DTYPE_NAMES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    stream.write(struct.pack("<Q", len(raw)) + raw)
    in_place: list[memoryview] = []  # written from the tensors' own memory, in one batch
    for _name, tensor in order:
        if not tensor.numel():
            continue
        if _in_place(tensor):
            in_place.append(_raw_bytes(tensor.detach()))
            continue
        stream.write_all(in_place, wait=False)  # the file's order: what came before goes first
        in_place = []
        stream.write(_raw_bytes(_cpu_contiguous(tensor)))  # one copy alive at a time
    # The tensors stay unchanged until the save's write step returns (stage_checkpoint_files
    # finishes every stream first): their hash may run on while the next file is written.
    stream.write_all(in_place, wait=False)
    stream.flush()


# ------------------------------------------------------------------------ staged files
@dataclass
class PendingFile:
    """A file whose bytes are written and hashed but not yet durable."""

    key: str
    staged: StagedObject
    stream: HashingStream

    def make_durable(self) -> FileEntry:
        """Commit the staged object (POSIX: fsync, rename, folder fsync); its manifest entry.

        The digest was taken on the way in (:meth:`HashingStream.finish` ran in the write step)."""
        digest = self.stream.hexdigest()
        try:
            size = self.staged.commit()  # a checkpoint's file is created, never replaced
        except FileExistsError as exc:
            raise TrialTakenOverError(
                f"{self.key} exists: another worker committed this checkpoint id (the trial was "
                "taken over while this worker stalled); not replacing it"
            ) from exc
        if size != self.stream.size:
            raise OSError(
                f"{self.key}: storage holds {size} bytes, {self.stream.size} were written"
            )
        return FileEntry(self.key, digest, size)

    def discard(self) -> None:
        self.stream.finish()
        self.staged.discard()


def _stage(storage: Storage, key: str, fill: Any, *args: Any) -> PendingFile:
    staged = storage.stage(key)
    stream = HashingStream(staged)
    try:
        fill(stream, *args)
        stream.flush()
    except BaseException:
        stream.finish()  # no hash may still read the caller's buffers
        staged.discard()
        raise
    return PendingFile(key, staged, stream)


def _torch_save(stream: HashingStream, state: Any) -> None:
    torch.save(state, cast(IO[bytes], stream))


@dataclass
class StagedCheckpoint:
    """One checkpoint's files, written, waiting to be made durable; ``files`` (the manifest's
    entries, with their digests) is filled by :meth:`make_durable`."""

    ckpt: str
    pending: list[PendingFile]
    files: dict[str, FileEntry] = field(default_factory=dict)

    @property
    def claimed(self) -> bool:
        """True once a file of this save is committed: the files are created in one order and
        none is ever replaced, so the first one's creator owns the whole ``<ckpt>/`` prefix."""
        return bool(self.files)

    def make_durable(self) -> None:
        for item in self.pending:
            entry = item.make_durable()
            self.files[entry.path.rsplit("/", 1)[-1]] = entry

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
    storage: Storage,
    ckpt: str,
    epoch: int,
    step: int,
    weights: Mapping[str, torch.Tensor],
    state: Any | None,
) -> StagedCheckpoint:
    """Write and hash one checkpoint's files (weights, and the training state when given) as
    staged objects under ``<ckpt>/``; :meth:`StagedCheckpoint.make_durable` commits them."""
    crash_point("checkpoint_stage")
    if storage.exists(ckpt):
        # Never deleted here: the start-up sweep removed this trial's leftovers, so whatever
        # exists now is another worker's (committed, or being committed) under the same id.
        raise TrialTakenOverError(
            f"checkpoint {storage.describe(ckpt)} exists: another worker wrote this checkpoint "
            "id (the trial was taken over while this worker stalled); not touching it"
        )
    meta = {"checkpoint_id": ckpt, "epoch": str(epoch), "step": str(step)}
    pending = [_stage(storage, f"{ckpt}/{WEIGHTS_FILE}", write_safetensors, weights, meta)]
    try:
        if state is not None:
            pending.append(_stage(storage, f"{ckpt}/{STATE_FILE}", _torch_save, state))
        for item in pending:  # every byte hashed before the caller may change its tensors
            item.stream.finish()
    except BaseException:
        for item in pending:
            item.discard()
        raise
    return StagedCheckpoint(ckpt, pending)
