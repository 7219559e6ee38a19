"""The study loop: resume orphaned trials, then ask for new ones until ``n_trials`` have finished.

Why not ``study.optimize`` with heartbeats: a killed trial stays RUNNING, and Optuna's retry
callback re-enqueues a *new* trial, so checkpoints and MLflow runs would have to follow a lineage.
Here a RUNNING trial whose lock is free (its process died) is picked up again as the same trial:
same number, same folder, same checkpoints, same MLflow run. A study killed any number of times
ends with exactly ``n_trials`` finished trials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.trial import TrialState

from mental_health_hpo.hpo.search_space import SearchSpace
from mental_health_hpo.hpo.study import StudyConfig
from mental_health_hpo.hpo.trial_folder import TrialFolder
from mental_health_hpo.ops import (
    HubAuthGate,
    is_auth_error,
    mask_secrets,
    study_logging,
    trial_logging,
)

logger = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class TrialStopped(Exception):  # noqa: N818  (a signal, like StopIteration)
    """Raised by an objective to stop a trial early: pruned, or past its time budget."""

    def __init__(self, reason: str, value: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.value = value


@dataclass
class TrialContext:
    """What an objective gets: the Optuna trial, its folder, its sampled values and a deadline."""

    trial: optuna.Trial
    folder: TrialFolder
    sampled: dict[str, Any]
    resumed: bool
    deadline: float | None
    reported: set[int] = field(default_factory=set)

    def should_stop(self, value: float, step: int) -> str | None:
        """Feed the pruner; the reason to stop (pruned, out of time) or None to go on.

        A resumed trial replays epochs it already reported; those are not reported twice.
        """
        if step not in self.reported:
            self.trial.report(value, step)
            self.reported.add(step)
        if self.trial.should_prune():
            return f"pruned at step {step}"
        if self.deadline is not None and time.monotonic() > self.deadline:
            return f"per-trial timeout reached at step {step}"
        return None


class Objective(Protocol):
    def __call__(self, context: TrialContext) -> float: ...


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


@dataclass
class StudyHooks:
    """Callbacks of the Kedro shell: tracking, retention, progress. All optional."""

    on_trial_end: Callable[[optuna.trial.FrozenTrial, TrialFolder], None] | None = None
    on_progress: Callable[[Progress], None] | None = None
    on_trial_error: Callable[[TrialFolder, BaseException], None] | None = None


@dataclass
class StudyRun:
    """What one call of :func:`run_study` did."""

    study: optuna.Study
    study_dir: Path
    ran: list[int] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)


def _finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_study(
    study: optuna.Study,
    config: StudyConfig,
    space: SearchSpace,
    base: dict[str, Any],
    objective: Objective,
    study_dir: Path,
    hooks: StudyHooks | None = None,
    auth_gate: HubAuthGate | None = None,
) -> StudyRun:
    """Run trials one at a time (FR-021) until ``config.n_trials`` have finished.

    A trial that raises is recorded as failed with its error and the study goes on (RR-003).
    With ``auth_gate`` (a hub encoder), a hub 401/403 pauses the study instead (FR-032).
    """
    with study_logging(study_dir, config.study_id):
        return _run_study(study, config, space, base, objective, study_dir, hooks, auth_gate)


def _run_study(
    study: optuna.Study,
    config: StudyConfig,
    space: SearchSpace,
    base: dict[str, Any],
    objective: Objective,
    study_dir: Path,
    hooks: StudyHooks | None,
    auth_gate: HubAuthGate | None,
) -> StudyRun:
    hooks = hooks or StudyHooks()
    result = StudyRun(study, study_dir)
    started = time.monotonic()
    durations: list[float] = []

    def attempt(trial: optuna.Trial, resumed: bool) -> bool:
        trial_started = time.monotonic()
        ran = _run_gated(
            study, trial, config, space, base, objective, study_dir, hooks, resumed, auth_gate
        )
        if ran:
            (result.resumed if resumed else result.ran).append(trial.number)
            durations.append(time.monotonic() - trial_started)
            _progress(study, config, hooks, started, durations, trial.number)
        return ran

    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _finished(study) >= config.n_trials:
            break
        attempt(optuna.Trial(study, frozen._trial_id), resumed=True)  # the same trial, resumed
    while _finished(study) + _running(study) < config.n_trials:
        attempt(study.ask(), resumed=False)
    return result


def _running(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def _run_gated(
    study: optuna.Study,
    trial: optuna.Trial,
    config: StudyConfig,
    space: SearchSpace,
    base: dict[str, Any],
    objective: Objective,
    study_dir: Path,
    hooks: StudyHooks,
    resumed: bool,
    auth_gate: HubAuthGate | None,
) -> bool:
    """``_run_one`` behind the hub gate: a 401/403 leaves the trial RUNNING, waits, resumes it."""
    while True:
        if auth_gate is not None:
            auth_gate.wait_until_authorized()  # no new trial, no download while refused
        try:
            return _run_one(
                study,
                trial,
                config,
                space,
                base,
                objective,
                study_dir,
                hooks,
                resumed,
                pausable=auth_gate is not None,
            )
        except Exception as error:
            if auth_gate is None or not is_auth_error(error):
                raise
            logger.warning("Trial %d paused by a hub authentication error: %s", trial.number, error)
            trial, resumed = (
                optuna.Trial(study, trial._trial_id),
                True,
            )  # the same trial


def _run_one(
    study: optuna.Study,
    trial: optuna.Trial,
    config: StudyConfig,
    space: SearchSpace,
    base: dict[str, Any],
    objective: Objective,
    study_dir: Path,
    hooks: StudyHooks,
    resumed: bool,
    pausable: bool = False,
) -> bool:
    """Run (or resume) one trial; False when another live process owns it."""
    folder = TrialFolder.of(study_dir, trial.number)
    with folder.lock() as owned:
        if not owned:
            logger.info("Trial %d is running in another process; skipping it", trial.number)
            return False
        with trial_logging(folder.logs, config.study_id, folder.trial_id):
            if not folder.read():
                folder.transition("queued")
            folder.transition("preparing", resumed=resumed)
            sampled = space.suggest(trial, base)
            deadline = time.monotonic() + config.trial_timeout_s if config.trial_timeout_s else None
            reported = set(study.trials[trial.number].intermediate_values)
            context = TrialContext(trial, folder, sampled, resumed, deadline, reported)
            folder.transition("running", params=sampled)
            state, value, error = _call(objective, context, pausable)
            folder.transition("finishing")
            if state is TrialState.COMPLETE:
                study.tell(trial, value)
            else:
                if error is not None:
                    trial.set_user_attr("error", error)
                study.tell(trial, state=state)
            frozen = study.trials[trial.number]
            final = {TrialState.COMPLETE: "completed", TrialState.PRUNED: "pruned"}.get(
                state, "failed"
            )
            folder.transition(final, value=value, error=error)  # type: ignore[arg-type]
            if hooks.on_trial_end is not None:
                hooks.on_trial_end(frozen, folder)
            return True


def _call(
    objective: Objective, context: TrialContext, pausable: bool = False
) -> tuple[TrialState, float | None, str | None]:
    try:
        return TrialState.COMPLETE, float(objective(context)), None
    except TrialStopped as stopped:
        logger.info("Trial %d stopped: %s", context.trial.number, stopped.reason)
        context.trial.set_user_attr("stopped", stopped.reason)
        return TrialState.PRUNED, stopped.value, None
    except (KeyboardInterrupt, SystemExit):
        raise  # leave it RUNNING: the next run resumes it
    except Exception as error:
        if pausable and is_auth_error(error):
            raise  # not a failure: the trial stays RUNNING and resumes once the gate opens
        message = mask_secrets(f"{type(error).__name__}: {error}")
        logger.error("Trial %d failed: %s", context.trial.number, message, exc_info=True)
        return TrialState.FAIL, None, message


def _progress(
    study: optuna.Study,
    config: StudyConfig,
    hooks: StudyHooks,
    started: float,
    durations: list[float],
    last: int,
) -> None:
    finished = _finished(study)
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = max(completed, key=lambda t: t.value or float("-inf")) if completed else None
    mean = sum(durations) / len(durations) if durations else None
    remaining = max(config.n_trials - finished, 0)
    progress = Progress(
        finished=finished,
        n_trials=config.n_trials,
        best_value=best.value if best else None,
        best_trial=best.number if best else None,
        elapsed_s=time.monotonic() - started,
        eta_s=mean * remaining if mean is not None else None,
        last_trial=last,
        last_state=study.trials[last].state.name.lower(),
    )
    logger.info(progress.line(), extra={"progress": progress.__dict__})
    if hooks.on_progress is not None:
        hooks.on_progress(progress)
