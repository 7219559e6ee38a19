"""Progress: bars on a terminal, one structured log line per epoch everywhere.

- ``progress``: epoch/batch bars on a terminal, silent stand-ins in logs, CI and subprocesses.
- ``EpochReporter.epoch_end``: the line a ``docker logs`` / ``nohup`` / CI reader sees once per
  epoch (trial, epoch i/n, the optimization metric, the losses and :data:`HEADLINE_METRICS`,
  elapsed, ETA), an INFO record whose ``progress`` extra holds every metric, so the study's
  JSON-lines log keeps the full set (and MLflow has it from the trial's journal). The line names
  a fixed handful: with all of the ~100 metrics it took ~150 wrapped lines per epoch off a
  terminal, and a study's stdout must grow by a constant per epoch, whatever the metrics. Its
  ETA counts only epochs run by this process, so a resumed trial does not report the rate of
  epochs it never ran.
- ``resume_message``: what a resumed trial says first.
- ``clean_bars``: log records drawn above the bars instead of through them (tqdm's
  ``external_write_mode`` around every handler, Kedro's RichHandler included).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Bar(Protocol[T_co]):
    """What the trainer uses of a bar: iterate it and show a few numbers."""

    def __iter__(self) -> Iterator[T_co]: ...

    def set_postfix(
        self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any
    ) -> None: ...

    def close(self) -> None: ...


class _QuietBar(Generic[T]):
    """A bar that draws nothing: same calls as tqdm, no output, no overhead."""

    def __init__(self, iterable: Iterable[T]) -> None:
        self._iterable = iterable

    def __iter__(self) -> Iterator[T]:
        return iter(self._iterable)

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        return None

    def close(self) -> None:
        return None


def is_interactive() -> bool:
    """True when stderr (where tqdm writes) is a terminal."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def bar_enabled(requested: bool | None) -> bool:
    """``None`` means auto: on for a terminal, off otherwise; an explicit value wins."""
    return is_interactive() if requested is None else requested


def progress(
    iterable: Iterable[T],
    *,
    total: int | None = None,
    desc: str = "",
    enabled: bool | None = None,
    leave: bool = False,
    position: int = 0,
    initial: int = 0,
) -> Bar[T]:
    """Wrap ``iterable`` in a tqdm bar, or in a silent stand-in when bars are off."""
    if not bar_enabled(enabled):
        return _QuietBar(iterable)
    return tqdm(  # type: ignore[no-any-return]
        iterable,
        total=total,
        desc=desc,
        leave=leave,
        position=position,
        initial=initial,
        dynamic_ncols=True,
    )


def format_duration(seconds: float) -> str:
    """``75.2`` -> ``"1m15s"``; ``3725`` -> ``"1h02m05s"``; under a minute ``"42s"``."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def resume_message(trial: int | str, epoch: int, checkpoint: str | Path) -> str:
    """``resuming trial 2 from epoch 1 (checkpoint experiments/.../ckpt-e0001-s000040)``.

    ``epoch`` is the epoch the resumed run starts with, as the trainer counts (from 0).
    """
    return f"resuming trial {trial} from epoch {epoch} (checkpoint {checkpoint})"


#: What the epoch line shows after the optimization metric, when the epoch has them.
HEADLINE_METRICS = ("train_loss", "val_loss", "val_f1_macro", "val_sentence_evidence_f1_macro")


@dataclass(frozen=True)
class EpochLine:
    """One epoch's progress: what the log line says, as fields for the JSON log."""

    trial: str
    epoch: int  # counts from 1 in the line: "epoch 3/5" is the third epoch
    epochs: int
    metrics: Mapping[str, float]
    elapsed_s: float
    eta_s: float | None
    objective: str | None = None

    def shown(self) -> dict[str, float]:
        """The objective, then the headline metrics, each once, those the epoch has."""
        names = dict.fromkeys([self.objective or "", *HEADLINE_METRICS])
        return {name: self.metrics[name] for name in names if name in self.metrics}

    def message(self) -> str:
        shown = " ".join(f"{name}={value:.4f}" for name, value in self.shown().items())
        eta = "?" if self.eta_s is None else format_duration(self.eta_s)
        trial = self.trial if self.trial.startswith(("trial", "run")) else f"trial {self.trial}"
        return (
            f"{trial} epoch {self.epoch}/{self.epochs} {shown} "
            f"elapsed {format_duration(self.elapsed_s)} eta {eta}"
        ).replace("  ", " ")

    def fields(self) -> dict[str, Any]:
        return {
            "kind": "epoch",
            "trial": self.trial,
            "epoch": self.epoch,
            "epochs": self.epochs,
            "objective": self.objective,
            "metrics": dict(self.metrics),
            "elapsed_s": round(self.elapsed_s, 3),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 3),
        }


@dataclass
class EpochReporter:
    """Logs one line per finished epoch of one trial.

    Create it where the trial's epochs start (after a resume: ``first_epoch`` is the epoch the
    run starts with, from 0) and call :meth:`epoch_end` after each epoch.
    """

    trial: int | str
    epochs: int
    first_epoch: int = 0
    #: The optimization metric, shown first.
    objective: str | None = None
    clock: Callable[[], float] = time.monotonic
    log: logging.Logger = field(default=logger)
    _started: float = field(init=False)

    def __post_init__(self) -> None:
        self._started = self.clock()

    def epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> EpochLine:
        """Log epoch ``epoch`` (from 0) with its metrics; returns what was logged."""
        elapsed = self.clock() - self._started
        done_here = epoch + 1 - self.first_epoch
        remaining = max(0, self.epochs - (epoch + 1))
        eta = elapsed / done_here * remaining if done_here > 0 else None
        line = EpochLine(
            trial=str(self.trial),
            epoch=epoch + 1,
            epochs=self.epochs,
            metrics={k: float(v) for k, v in metrics.items()},
            elapsed_s=elapsed,
            eta_s=eta,
            objective=self.objective,
        )
        self.log.info(line.message(), extra={"progress": line.fields()})
        return line


class _BarSafeHandler(logging.Handler):
    """Emits through ``inner`` with the bars cleared first and redrawn after."""

    def __init__(self, inner: logging.Handler) -> None:
        super().__init__(inner.level)
        self.inner = inner

    def emit(self, record: logging.LogRecord) -> None:
        with tqdm.external_write_mode(file=sys.stderr):
            self.inner.handle(record)

    def flush(self) -> None:
        self.inner.flush()


@contextlib.contextmanager
def clean_bars(target: logging.Logger | None = None) -> Iterator[None]:
    """While active, log records of ``target`` (root) never tear a bar; off a terminal a no-op."""
    if not is_interactive():
        yield
        return
    target = target or logging.getLogger()
    originals = list(target.handlers)
    wrapped = [_BarSafeHandler(h) for h in originals]
    for original, safe in zip(originals, wrapped, strict=True):
        target.removeHandler(original)
        target.addHandler(safe)
    try:
        yield
    finally:
        for original, safe in zip(originals, wrapped, strict=True):
            target.removeHandler(safe)
            target.addHandler(original)
