"""Retries with exponential backoff for calls that reach a hub (its outages are brief and common).

Up to ``len(delays)`` attempts, waiting ``delays[i]`` after failed attempt ``i`` (1, 2, 4, 8 s by
default); an error for which ``retry_if`` says False is raised at once, since trying again
will not help (``ops.hub_errors.is_transient_hub_error`` tells which hub errors can heal).

Example:
    >>> with_retries(lambda: 42, "answer", sleep=lambda s: None)
    42
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_DELAYS_S: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)


class RetriesExhaustedError(RuntimeError):
    """Every attempt failed; ``last`` is the final error."""

    def __init__(self, describe: str, attempts: int, last: Exception) -> None:
        super().__init__(f"{describe} failed after {attempts} attempts: {last}")
        self.last = last


def with_retries(
    action: Callable[[], T],
    describe: str,
    *,
    delays: tuple[float, ...] = RETRY_DELAYS_S,
    sleep: Callable[[float], None] = time.sleep,
    retry_if: Callable[[Exception], bool] = lambda error: True,
) -> T:
    """Run ``action`` until it succeeds, an error ``retry_if`` rejects occurs, or the attempts
    run out."""
    last: Exception | None = None
    for attempt, delay in enumerate(delays, start=1):
        try:
            return action()
        except Exception as error:  # network errors come in many types
            if not retry_if(error):
                raise
            last = error
            if attempt < len(delays):
                logger.warning(
                    "%s failed (attempt %d of %d): %s; retrying in %.0f s",
                    describe,
                    attempt,
                    len(delays),
                    type(error).__name__,
                    delay,
                )
                sleep(delay)
    assert last is not None  # delays is never empty
    raise RetriesExhaustedError(describe, len(delays), last) from last
