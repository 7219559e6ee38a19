"""Counting a study's trials once per look: finished, running, best, and the progress line.

Trials are fetched once (``get_trials(deepcopy=False)``) per look: ``study.trials`` deep-copies
every trial on each call, which is quadratic over a long study on a database storage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

#: ``end_reason`` of a trial asked beyond ``n_trials`` (only when something outside this
#: runner asks concurrently): it is ended at once and never counted.
SURPLUS = "surplus"


def is_surplus(trial: FrozenTrial) -> bool:
    return trial.user_attrs.get("end_reason") == SURPLUS


@dataclass(frozen=True)
class Tally:
    """What a study holds right now."""

    finished: int
    running: int
    n_trials: int
    best_value: float | None
    best_trial: int | None

    @classmethod
    def of(cls, study: optuna.Study, trials: Sequence[FrozenTrial], n_trials: int) -> Tally:
        counted = [t for t in trials if not is_surplus(t)]
        finished = sum(t.state in FINISHED for t in counted)
        running = sum(t.state is TrialState.RUNNING for t in counted)
        best = best_of(study, counted)
        return cls(
            finished=finished,
            running=running,
            n_trials=n_trials,
            best_value=None if best is None else best.value,
            best_trial=None if best is None else best.number,
        )

    @property
    def complete(self) -> bool:
        return self.finished >= self.n_trials and self.running == 0

    def status(self, mine: int = 0) -> str:
        """``study 6/8 finished, 2 running on other workers`` (``mine``: this worker's own)."""
        line = f"study {self.finished}/{self.n_trials} finished"
        others = max(self.running - mine, 0)
        return f"{line}, {others} running on other workers" if others else line


def best_of(study: optuna.Study, trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    """The best completed trial in the study's direction; a value of 0.0 is a value."""
    completed = [t for t in trials if t.state is TrialState.COMPLETE and t.value is not None]
    if not completed:
        return None
    sign = -1.0 if study.direction is StudyDirection.MAXIMIZE else 1.0
    return min(completed, key=lambda t: (sign * float(t.value or 0.0), t.number))


@dataclass
class Progress:
    """After every trial: i of n, completion, best so far, ETA."""

    finished: int
    n_trials: int
    best_value: float | None
    best_trial: int | None
    elapsed_s: float
    eta_s: float | None
    last_trial: int
    last_state: str
    running: int = 0

    @property
    def completion(self) -> float:
        return self.finished / self.n_trials

    def line(self) -> str:
        best = (
            "n/a" if self.best_value is None else f"{self.best_value:.4f} (trial {self.best_trial})"
        )
        eta = "n/a" if self.eta_s is None else f"{self.eta_s:.0f}s"
        return (
            f"trial {self.finished} of {self.n_trials} ({self.completion:.0%}) — last: trial "
            f"{self.last_trial} {self.last_state}; best so far {best}; ETA {eta}"
        )
