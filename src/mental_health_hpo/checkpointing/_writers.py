"""Who writes a checkpoint, and when: one protocol, three writers, one writer thread.

The manager decides *what* to save and hands each save to a writer as a :class:`SaveJob` of two
steps: ``write`` (serialize and hash the bytes into staged objects) and ``commit`` (make them
durable, commit the manifest, prune). A writer decides *when* each step runs and what must be
copied first (Lightning's ``CheckpointIO`` / ``AsyncCheckpointIO`` split):

* :class:`SyncWriter` (``sync``) runs both steps before ``save`` returns, from the live tensors;
* :class:`DeferredCommitWriter` (``deferred``, the default on CPU) writes from the live tensors
  before ``save`` returns, and commits on a :class:`WriterThread`: once ``write`` has returned the
  kernel holds the bytes, so the next optimizer step cannot change them, and what is left is
  waiting for the disk, which costs no CPU;
* :class:`SnapshotWriter` (``async``, the default on an accelerator) copies the state into one
  reused snapshot buffer set, then writes and commits on a :class:`WriterThread`, since the next
  optimizer step changes the live tensors while the write is in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch

from mental_health_hpo.checkpointing._errors import AsyncSaveError, CheckpointError
from mental_health_hpo.checkpointing._options import WriterKind
from mental_health_hpo.workspace.storage import TrialTakenOverError


class SaveJob(Protocol):
    """One save, in the two steps a writer may run at different times or on different threads."""

    def write(self) -> None:
        """Serialize and hash the bytes into staged objects (not yet durable)."""
        ...

    def commit(self) -> None:
        """Make the staged objects durable, commit the manifest, prune."""
        ...


class CheckpointWriter(Protocol):
    """Runs save jobs; re-raises a failed job's error at the next call, never drops it."""

    background: bool

    def stage(self, name: str, obj: Any) -> Any:
        """What the job may read later: the live object, or a snapshot of it."""
        ...

    def submit(self, job: SaveJob) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class WriterThread:
    """Runs one job at a time on a dedicated thread.

    ``submit`` waits for the previous job first (so at most one save is in flight) and re-raises
    its error; ``flush`` waits and re-raises; ``close`` flushes and stops the thread.
    """

    def __init__(self, name: str = "checkpoint-writer") -> None:
        self._cond = threading.Condition()
        self._job: Callable[[], None] | None = None
        self._busy = False
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._job is None and not self._closed:
                    self._cond.wait()
                if self._job is None:
                    return
                job = self._job
            try:
                job()
            except BaseException as exc:  # surfaced at the next submit/flush/close
                with self._cond:
                    self._error = exc
            finally:
                with self._cond:
                    self._job = None
                    self._busy = False
                    self._cond.notify_all()

    def _wait_idle(self) -> None:
        with self._cond:
            while self._busy:
                self._cond.wait()

    def _raise_pending(self) -> None:
        with self._cond:
            error, self._error = self._error, None
        if error is not None:
            # A refused commit (the trial was taken over) is told apart by its type, as it is
            # when the save ran in the training thread.
            if isinstance(error, CheckpointError | TrialTakenOverError):
                raise error
            raise AsyncSaveError(f"background checkpoint save failed: {error}") from error

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._busy

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job`` after the one in flight has finished; raise that one's error first."""
        self._wait_idle()
        self._raise_pending()
        with self._cond:
            if self._closed:
                raise AsyncSaveError("checkpoint writer is closed")
            self._job = job
            self._busy = True
            self._cond.notify_all()

    def flush(self) -> None:
        """Wait for the job in flight; re-raise its error."""
        self._wait_idle()
        self._raise_pending()

    def close(self) -> None:
        """Flush, then stop the thread."""
        try:
            self.flush()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            if self._thread is not threading.current_thread():
                self._thread.join(timeout=60)


class SyncWriter:
    """Writes and commits each job before ``submit`` returns, in the caller's thread."""

    background = False

    def stage(self, name: str, obj: Any) -> Any:
        return obj

    def submit(self, job: SaveJob) -> None:
        job.write()
        job.commit()

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


class DeferredCommitWriter:
    """Writes each job in the caller's thread, from the live tensors (no snapshot), and commits
    it on a :class:`WriterThread`. The choice for CPU training, where a thread that serializes
    would take cores from training."""

    background = True

    def __init__(self) -> None:
        self._thread = WriterThread(name="checkpoint-commit")

    def stage(self, name: str, obj: Any) -> Any:
        return obj

    def submit(self, job: SaveJob) -> None:
        self._thread.flush()  # the previous save is committed before this one writes
        job.write()
        self._thread.submit(job.commit)

    def flush(self) -> None:
        self._thread.flush()

    def close(self) -> None:
        self._thread.close()


class SnapshotWriter:
    """Snapshots the state, then writes and commits on a :class:`WriterThread`; at most one job
    in flight."""

    background = True

    def __init__(self, pool: SnapshotPool | None = None) -> None:
        self._lease: SnapshotLease = (pool or shared_pool()).acquire()
        self._thread = WriterThread()

    def stage(self, name: str, obj: Any) -> Any:
        # The previous job may still read the buffers: wait for it before overwriting them.
        self._thread.flush()
        return self._lease.snapshot(name, obj)

    def submit(self, job: SaveJob) -> None:
        self._lease.drop_untouched()

        def write_and_commit() -> None:
            self._lease.wait_copied()  # device -> pinned host copies issued non-blocking
            job.write()
            job.commit()

        self._thread.submit(write_and_commit)

    def flush(self) -> None:
        self._thread.flush()

    def close(self) -> None:
        try:
            self._thread.close()
        finally:
            self._lease.release()


def state_on_accelerator(weights: dict[str, torch.Tensor]) -> bool:
    return any(t.device.type != "cpu" for t in weights.values())


def make_writer(
    kind: WriterKind, on_accelerator: bool, pool: SnapshotPool | None = None
) -> CheckpointWriter:
    """The writer for ``kind``. ``auto``: a snapshot written in the background where training
    runs on an accelerator, a write in place with the commit deferred on CPU."""
    if kind == "async" or (kind == "auto" and on_accelerator):
        return SnapshotWriter(pool)
    if kind in ("deferred", "auto"):
        return DeferredCommitWriter()
    return SyncWriter()


# Snapshots for background saves: real host copies taken before ``save`` returns.
#
# On CPU, ``state_dict()`` tensors alias the live parameters that the next optimizer step changes,
# so a background save must copy them first. One buffer set is enough: at most one save is in
# flight and a snapshot waits for it (the writer flushes before staging). The set is kept by a
# :class:`SnapshotPool`, one per process by default (:func:`shared_pool`), so the trials of a
# study reuse the same memory instead of allocating it anew for each trial.
#
# Tensors on an accelerator are copied into pinned host memory with ``non_blocking=True``, as
# PyTorch DCP's ``async_save`` stages them; the writer waits for those copies before it reads.
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
