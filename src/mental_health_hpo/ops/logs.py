"""Structured logs, machine-readable per study and trial: JSON on Python's logging, with context
from ``contextvars``.

Every warning and error goes to human-readable stdout (Kedro's rich handler, configured in
``conf/logging.yml``) and to JSON-lines files: one per study (``study_<id>/logs/study.jsonl``)
and one per trial (``trial_<n>/logs/trial.jsonl``). Those files depend on the study, so they are
attached at run time by :func:`study_logging` / :func:`trial_logging` as ordinary
``logging.FileHandler`` objects on the root logger: no second logging system.

Context (study_id, trial_id, epoch, step) lives in a ``ContextVar``: :func:`log_context` scopes it
(``with log_context(trial_id="trial_0003"):``), :func:`set_context` updates it inside a scope (the
trainer's per-epoch callback), and :class:`ContextFilter` copies it onto each record.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mental_health_hpo.ops.masking import MaskingFilter, mask_obj

CONTEXT_FIELDS: tuple[str, ...] = ("study_id", "trial_id", "epoch", "step")
_EMPTY: dict[str, Any] = {}  # never mutated: every update sets a new dict
_CONTEXT: ContextVar[dict[str, Any]] = ContextVar("mental_health_hpo_log_context")
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "component",
    "taskName",
    *CONTEXT_FIELDS,
}


def current_context() -> dict[str, Any]:
    """The context fields in effect now (a copy)."""
    return dict(_CONTEXT.get(_EMPTY))


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[dict[str, Any]]:
    """Add ``fields`` to every record logged inside the block (and restore them after it)."""
    token = _CONTEXT.set({**_CONTEXT.get(_EMPTY), **fields})
    try:
        yield current_context()
    finally:
        _CONTEXT.reset(token)


def set_context(**fields: Any) -> None:
    """Update the context inside the current :func:`log_context` block (e.g. epoch and step).

    The enclosing block restores what was there before it when it exits.
    """
    _CONTEXT.set({**_CONTEXT.get(_EMPTY), **fields})


class ContextFilter(logging.Filter):
    """Copies study_id/trial_id/epoch/step from the context onto a record; ``extra`` wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _CONTEXT.get(_EMPTY)
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, context.get(name))
        if not hasattr(record, "component"):
            record.component = record.name
        return True


class MaxLevelFilter(logging.Filter):
    """Lets through records up to ``max_level`` (used to leave CRITICAL to its own handler)."""

    def __init__(self, max_level: str | int = "ERROR", name: str = "") -> None:
        super().__init__(name)
        self.max_level = (
            logging.getLevelName(max_level) if isinstance(max_level, str) else max_level
        )

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno <= self.max_level


class JsonFormatter(logging.Formatter):
    """One JSON object a line: timestamp (ISO 8601, UTC), level, component, message, context, extra.

    The payload is masked again here, so a handler without the masking filter still writes none
    of the secrets :mod:`mental_health_hpo.ops.masking` knows.
    """

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "component": getattr(record, "component", None) or record.name,
            "message": record.getMessage(),
        }
        context = _CONTEXT.get(_EMPTY)
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            payload[name] = value if value is not None else context.get(name)
        extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k[0] != "_"}
        payload["extra"] = extra
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            payload["exception"] = record.exc_text
        return json.dumps(mask_obj(payload), default=str, ensure_ascii=False)


class CriticalToStdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes CRITICAL records to the *current* ``sys.stdout`` and flushes at once.

    stdout is block-buffered when piped (nohup, CI, docker logs); a critical error must not sit
    in a buffer behind a progress bar.
    """

    def __init__(self, level: int | str = logging.CRITICAL) -> None:
        super().__init__(sys.stdout)
        self.setLevel(level)

    def emit(self, record: logging.LogRecord) -> None:
        self.setStream(sys.stdout)  # follow redirections made after configuration
        super().emit(record)
        self.flush()


class _TrialOnly(logging.Filter):
    """Keeps records of one trial, and records made outside any trial (background threads)."""

    def __init__(self, trial_id: str) -> None:
        super().__init__()
        self.trial_id = trial_id

    def filter(self, record: logging.LogRecord) -> bool:
        trial = getattr(record, "trial_id", None) or _CONTEXT.get(_EMPTY).get("trial_id")
        return trial is None or trial == self.trial_id


def attach_jsonl_file(
    path: str | Path,
    level: int | str = logging.WARNING,
    logger: logging.Logger | None = None,
    trial_id: str | None = None,
) -> logging.Handler:
    """Add a JSON-lines file handler (masked, with context) to ``logger`` (the root by default).

    ``trial_id`` restricts the file to that trial's records. Returns the handler, for
    :func:`detach_handler`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(target, mode="a", encoding="utf-8", delay=True)
    handler.setLevel(level)
    handler.addFilter(ContextFilter())
    if trial_id is not None:
        handler.addFilter(_TrialOnly(trial_id))
    handler.addFilter(MaskingFilter())
    handler.setFormatter(JsonFormatter())
    (logger or logging.getLogger()).addHandler(handler)
    return handler


class _WarningsOrProgress(logging.Filter):
    """Records at or above ``threshold``, and progress records of any level."""

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.threshold or hasattr(record, "progress")


def detach_handler(handler: logging.Handler, logger: logging.Logger | None = None) -> None:
    """Remove and close a handler added by :func:`attach_jsonl_file`."""
    (logger or logging.getLogger()).removeHandler(handler)
    handler.close()


def study_log_path(study_dir: str | Path) -> Path:
    return Path(study_dir) / "logs" / "study.jsonl"


def trial_log_path(trial_logs_dir: str | Path) -> Path:
    return Path(trial_logs_dir) / "trial.jsonl"


@contextlib.contextmanager
def study_logging(
    study_dir: str | Path, study_id: str, level: int | str = logging.WARNING
) -> Iterator[Path]:
    """For the whole study: context ``study_id`` and ``<study_dir>/logs/study.jsonl``.

    The file takes warnings and errors, and the study's progress records (INFO records that
    carry a ``progress`` extra: trial i of n, best so far, ETA) so a dashboard can tail it.
    """
    path = study_log_path(study_dir)
    with log_context(study_id=study_id):
        handler = attach_jsonl_file(path, logging.INFO)
        threshold = logging.getLevelName(level) if isinstance(level, str) else level
        handler.addFilter(_WarningsOrProgress(threshold))
        try:
            yield path
        finally:
            detach_handler(handler)


@contextlib.contextmanager
def trial_logging(
    trial_logs_dir: str | Path,
    study_id: str,
    trial_id: str,
    level: int | str = logging.WARNING,
) -> Iterator[Path]:
    """For one trial: context ``study_id``/``trial_id`` and ``<trial>/logs/trial.jsonl``.

    Epoch and step start empty; the trainer's callback sets them with :func:`set_context`.
    """
    path = trial_log_path(trial_logs_dir)
    with log_context(study_id=study_id, trial_id=trial_id, epoch=None, step=None):
        handler = attach_jsonl_file(path, level, trial_id=trial_id)
        try:
            yield path
        finally:
            detach_handler(handler)


def install_project_logging(logger: logging.Logger | None = None) -> None:
    """Add masking and context to every handler of ``logger`` (root), and the CRITICAL handler.

    Idempotent. Called by the project hook once Kedro has configured ``conf/logging.yml``, so the
    handlers declared there (and any added later by the study runner) mask secrets and carry the
    study and trial context.
    """
    from mental_health_hpo.ops.masking import MaskingFilter

    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
        if not isinstance(handler, CriticalToStdoutHandler) and not any(
            isinstance(f, MaxLevelFilter) for f in handler.filters
        ):
            handler.addFilter(MaxLevelFilter("ERROR"))
    if not any(isinstance(h, CriticalToStdoutHandler) for h in target.handlers):
        critical = CriticalToStdoutHandler()
        critical.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        critical.addFilter(ContextFilter())
        critical.addFilter(MaskingFilter())
        target.addHandler(critical)
