"""What a study's objective and the Kedro shell see of the runner: the trial's context, the
signals an objective raises, and the hooks the shell plugs in."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.trial import FrozenTrial

from mental_health_hpo.hpo.tally import Progress, Tally
from mental_health_hpo.hpo.trial_folder import TrialFolder


class TrialStopped(Exception):  # noqa: N818  (a signal, like StopIteration)
    """Raised by an objective to stop a trial early: pruned, or past its time budget."""

    def __init__(self, reason: str, value: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.value = value


class LeaseLost(Exception):  # noqa: N818  (a signal)
    """Another worker took this trial over (this one stalled past its lease): stop, tell nothing."""


class StudyStoppedError(RuntimeError):
    """The study cannot go on (storage exhausted): the worker stops with a non-zero exit."""


@dataclass
class TrialContext:
    """What an objective gets: the Optuna trial, its folder, its sampled values and a deadline.

    ``deadline`` (seconds of ``clock``, None: no timeout) is checked at each epoch's end by
    :meth:`should_stop` and inside epochs, every ``check_every_steps`` optimizer steps, by
    :meth:`out_of_time`. Either marks the trial ``timed_out``: its best value stays eligible.
    """

    trial: optuna.Trial
    folder: TrialFolder
    sampled: dict[str, Any]
    resumed: bool
    deadline: float | None
    reported: set[int] = field(default_factory=set)
    lease_lost: Callable[[], bool] = lambda: False
    #: Renews the lease now: False once another worker took the trial over (checked before
    #: each checkpoint commit, see ``RunCheckpoints.still_owner``).
    holds_lease: Callable[[], bool] = lambda: True
    torch_threads: int | None = None
    study_name: str = ""
    timed_out: bool = False
    check_every_steps: int = 10
    clock: Callable[[], float] = time.monotonic

    def should_stop(self, value: float, step: int) -> str | None:
        """Feed the pruner; the reason to stop (pruned, out of time) or None to go on.

        A resumed trial replays epochs it already reported; those are not reported twice.
        """
        if self.lease_lost():
            raise LeaseLost(f"trial {self.trial.number} was taken over by another worker")
        if step not in self.reported:
            self.trial.report(value, step)
            self.reported.add(step)
        if self.trial.should_prune():
            return f"pruned by the pruner at epoch {step}"
        if self.out_of_time():
            return f"timed out at epoch {step}"
        return None

    def out_of_time(self) -> bool:
        """True once past the deadline, and the trial is then marked ``timed_out``."""
        if self.deadline is None or self.clock() <= self.deadline:
            return False
        self.timed_out = True  # its best value so far stays eligible
        return True


class Objective(Protocol):
    def __call__(self, context: TrialContext) -> float: ...


@dataclass
class StudyHooks:
    """Callbacks of the Kedro shell: tracking, retention, progress. All optional.

    ``on_trial_end`` must be idempotent: a worker that takes over a trial killed while
    finishing calls it again.
    """

    on_trial_end: Callable[[FrozenTrial, TrialFolder], None] | None = None
    on_progress: Callable[[Progress], None] | None = None
    #: Once this worker's lease is held: other workers now see it as live.
    on_start: Callable[[], None] | None = None


@dataclass
class StudyRun:
    """What one worker's :meth:`StudyRunner.run` did, and the study as it left it."""

    study: optuna.Study
    study_dir: Path
    ran: list[int] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)
    tally: Tally | None = None
