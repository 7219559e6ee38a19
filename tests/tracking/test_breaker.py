"""The circuit breaker bounds a call's wait, fails fast while open and probes after cooldown."""

from __future__ import annotations

import threading
import time

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

from mental_health_hpo.tracking.breaker import (
    BreakerOptions,
    CircuitBreaker,
    TrackerUnavailableError,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _hang(release: threading.Event) -> str:
    release.wait(30)
    return "late"


def test_a_hung_call_is_cut_at_the_timeout_then_the_breaker_fails_fast() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerOptions(call_timeout_s=0.3, cooldown_s=10), clock=clock)
    release = threading.Event()
    try:
        started = time.monotonic()
        with pytest.raises(TrackerUnavailableError, match="did not answer within"):
            breaker.call(_hang, release)
        assert time.monotonic() - started < 2.0
        assert breaker.is_open
        calls: list[int] = []
        with pytest.raises(TrackerUnavailableError, match="circuit open"):
            breaker.call(calls.append, 1)
        assert calls == []  # refused without touching the store
        clock.now = 11.0  # cooldown over: one probe goes through, and success closes it
        assert breaker.call(lambda: "ok") == "ok" and not breaker.is_open
    finally:
        release.set()


def test_a_keyed_call_waits_for_its_own_late_twin_only() -> None:
    breaker = CircuitBreaker(BreakerOptions(call_timeout_s=0.2, cooldown_s=0.0))
    release = threading.Event()
    try:
        with pytest.raises(TrackerUnavailableError):
            breaker.call(_hang, release, key="status:r1")
        with pytest.raises(TrackerUnavailableError, match="earlier call for status:r1"):
            breaker.call(lambda: None, key="status:r1")
        assert breaker.call(lambda: 2, key="status:r2") == 2
    finally:
        release.set()
    time.sleep(0.3)
    assert breaker.call(lambda: 3, key="status:r1") == 3  # the twin is done


def test_failed_probes_back_off_and_client_errors_do_not_open_it() -> None:
    clock = Clock()
    options = BreakerOptions(call_timeout_s=5, cooldown_s=1, max_cooldown_s=3)
    breaker = CircuitBreaker(options, clock=clock)

    def down() -> None:
        raise ConnectionError("refused")

    for now, cooldown in [(0.0, 1.0), (1.0, 2.0), (3.0, 3.0), (6.0, 3.0)]:
        clock.now = now
        with pytest.raises(TrackerUnavailableError):
            breaker.call(down)
        clock.now = now + cooldown - 0.01
        assert breaker.is_open
        clock.now = now + cooldown
        assert not breaker.is_open

    def missing() -> None:
        raise MlflowException("no such run", error_code=RESOURCE_DOES_NOT_EXIST)

    with pytest.raises(MlflowException):
        breaker.call(missing)
    assert not breaker.is_open


def test_a_call_logs_in_its_callers_trial_context(caplog: pytest.LogCaptureFixture) -> None:
    """A record MLflow makes inside a call (its retry warnings) carries the calling trial's ids."""
    import logging

    from mental_health_hpo.ops.logs import ContextFilter, log_context

    caplog.handler.addFilter(ContextFilter())
    breaker = CircuitBreaker(BreakerOptions(call_timeout_s=5.0))

    def warn() -> None:
        logging.getLogger("urllib3.connectionpool").warning("Retrying after connection broken")

    with log_context(study_id="s", trial_id="trial_0007"):
        breaker.call(warn)
    [record] = [r for r in caplog.records if "Retrying" in r.getMessage()]
    assert (record.study_id, record.trial_id) == ("s", "trial_0007")  # type: ignore[attr-defined]
