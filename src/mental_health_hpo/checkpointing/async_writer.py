"""One background writer thread, at most one save in flight, errors re-raised, never dropped."""

from __future__ import annotations

import threading
from collections.abc import Callable

from mental_health_hpo.checkpointing.errors import AsyncSaveError, CheckpointError


class AsyncWriter:
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
            if isinstance(error, CheckpointError):
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
