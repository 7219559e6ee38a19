"""A user's input or configuration error ends a command with its message, not a traceback.

Why an excepthook: Kedro's logging config installs rich's traceback handler
(``kedro.logging.RichHandler`` with ``rich_tracebacks``), and an error raised in a node leaves
``kedro run`` through ``sys.excepthook``, so a bad CSV path printed two pages of source frames
(the wrapped pandas error first) around a message that already said what to fix. The errors
listed here carry that message: the hook prints it alone, masked, and the process still exits
with status 1, as for any uncaught exception. Every other error keeps the full traceback, and
``MENTAL_HEALTH_HPO_TRACEBACK=1`` brings it back for these too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from types import TracebackType

from mental_health_hpo.ops.masking import mask_secrets

TRACEBACK_ENV = "MENTAL_HEALTH_HPO_TRACEBACK"

ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], object]


def short_error_hook(
    user_errors: tuple[type[BaseException], ...], fallback: ExceptHook
) -> ExceptHook:
    """An excepthook that prints ``user_errors`` as one short message and defers the rest."""

    def hook(
        kind: type[BaseException], error: BaseException, trace: TracebackType | None
    ) -> object:
        if not isinstance(error, user_errors) or os.environ.get(TRACEBACK_ENV):
            return fallback(kind, error, trace)
        sys.stderr.write(
            f"\nError ({kind.__name__}): {mask_secrets(str(error))}\n"
            f"(set {TRACEBACK_ENV}=1 to see the traceback)\n"
        )
        sys.stderr.flush()
        return None

    hook.short_user_errors = user_errors  # type: ignore[attr-defined]
    return hook


def install_short_user_errors(user_errors: tuple[type[BaseException], ...]) -> None:
    """Wrap the current ``sys.excepthook`` (rich's, under kedro) once; idempotent."""
    if getattr(sys.excepthook, "short_user_errors", None) == user_errors:
        return
    sys.excepthook = short_error_hook(user_errors, sys.excepthook)
