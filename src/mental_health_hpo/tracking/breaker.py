"""A circuit breaker that bounds how long training can wait on the tracking store.

Why: MLflow's REST client retries on its own (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` = 7,
``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`` = 2, ``MLFLOW_HTTP_REQUEST_BACKOFF_JITTER`` = 1.0,
``MLFLOW_HTTP_REQUEST_TIMEOUT`` = 120 s per request, in ``mlflow/environment_variables.py``;
urllib3's ``Retry`` sleeps ``factor * 2 ** (n - 1)`` s, up to 120 s, before retry n >= 2). Against
a stopped server one call therefore blocks about four minutes, and a hung server blocks it two
minutes per attempt. Turning those settings down would change them for kedro-mlflow and every
other MLflow user in the process, so the breaker leaves them alone and bounds the wait instead:

- each call runs in a daemon thread and is given ``call_timeout_s``; when it is not done by then
  (or raises), the caller gets :class:`TrackerUnavailableError` and the breaker opens;
- while open, calls fail at once, for ``cooldown_s`` (doubling on each failed probe up to
  ``max_cooldown_s``); then one call is let through as a probe; success closes the breaker;
- a timed-out call goes on in its thread (inside MLflow's retries, which may sleep two minutes
  between attempts even once the server is back), so probes do not wait for it; at most
  ``max_stuck_calls`` such threads are allowed, and a call with a ``key`` is refused while an
  earlier call with the same key is still running, so that order-sensitive requests (creating a
  run, changing its status) never race their own late twin.

A timed-out call may still succeed later in its thread. Callers only send idempotent requests
(metrics with their journaled timestamps, tags, a run found again by its tag), so the second
send of the same request changes nothing.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class TrackerUnavailableError(RuntimeError):
    """The tracking store did not answer in time, or the breaker is open."""


@dataclass(frozen=True)
class BreakerOptions:
    """How long one call may take and how long to leave the store alone after a failure."""

    call_timeout_s: float = 10.0
    cooldown_s: float = 30.0
    max_cooldown_s: float = 300.0
    max_stuck_calls: int = 8


class CircuitBreaker:
    """Closed -> (failure) open -> (cooldown over) one probe -> closed or open again."""

    def __init__(
        self,
        options: BreakerOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options or BreakerOptions()
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until: float | None = None
        self._cooldown = self.options.cooldown_s
        self._stuck: dict[threading.Thread, str | None] = {}

    @property
    def is_open(self) -> bool:
        """True while calls are refused (open and the cooldown not over)."""
        with self._lock:
            return self._open_until is not None and self._clock() < self._open_until

    def reset(self) -> None:
        """Close the breaker now (a caller that knows the store is back)."""
        with self._lock:
            self._open_until = None
            self._cooldown = self.options.cooldown_s

    def call(
        self, action: Callable[..., T], *args: Any, key: str | None = None, **kwargs: Any
    ) -> T:
        """``action(*args, **kwargs)`` within ``call_timeout_s``; else TrackerUnavailableError.

        ``key``: calls with the same key never overlap (an earlier one still running refuses
        this one).
        """
        self._admit(key)
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["value"] = action(*args, **kwargs)
            except BaseException as error:  # handed to the caller's thread
                outcome["error"] = error

        # The call runs in the caller's context (its study and trial ids): what MLflow logs from
        # it, even minutes later from a call stuck in its retries, is that trial's, not whichever
        # trial's log happens to be open by then.
        context = contextvars.copy_context()
        worker = threading.Thread(target=context.run, args=(run,), name="mlflow-call", daemon=True)
        worker.start()
        worker.join(self.options.call_timeout_s)
        if worker.is_alive():
            with self._lock:
                self._stuck[worker] = key
            self._trip(f"no answer within {self.options.call_timeout_s:.0f} s")
            raise TrackerUnavailableError(
                f"the tracking store did not answer within {self.options.call_timeout_s:.0f} s"
            )
        if "error" in outcome:
            error = outcome["error"]
            if _is_client_error(error):
                self.reset()
                raise error  # the store answered: it is up, the request was wrong
            self._trip(f"{type(error).__name__}: {error}")
            raise TrackerUnavailableError(f"the tracking store failed: {error}") from error
        self.reset()
        return outcome["value"]  # type: ignore[no-any-return]

    def _admit(self, key: str | None) -> None:
        with self._lock:
            self._stuck = {t: k for t, k in self._stuck.items() if t.is_alive()}
            if key is not None and key in self._stuck.values():
                raise TrackerUnavailableError(f"an earlier call for {key} is still waiting")
            if len(self._stuck) >= self.options.max_stuck_calls:
                raise TrackerUnavailableError(
                    f"{len(self._stuck)} earlier calls are still waiting on the tracking store"
                )
            if self._open_until is not None and self._clock() < self._open_until:
                left = self._open_until - self._clock()
                raise TrackerUnavailableError(f"tracking store circuit open for {left:.0f} s more")

    def _trip(self, why: str) -> None:
        with self._lock:
            was_open = self._open_until is not None
            if was_open:  # a failed probe: wait longer next time
                self._cooldown = min(self._cooldown * 2, self.options.max_cooldown_s)
            self._open_until = self._clock() + self._cooldown
            cooldown = self._cooldown
        log = logger.info if was_open else logger.warning
        log("Tracking store unreachable (%s); next try in %.0f s", why, cooldown)


def _is_client_error(error: BaseException) -> bool:
    """An MLflow error with a 4xx status: the server is up and refused this one request."""
    status = getattr(error, "get_http_status_code", None)
    try:
        code = int(status()) if callable(status) else 0
    except Exception:
        return False
    return 400 <= code < 500
