"""The study loop of one worker among any number: claim a trial, run it, repeat until done.

Why not ``study.optimize`` with Optuna's heartbeat: a killed trial is failed and retried as a
*new* trial, so checkpoints and MLflow runs would have to follow a lineage. Here ownership is a
lease in the study's database (:mod:`mental_health_hpo.hpo.leases`): a RUNNING trial whose lease
expired (its worker died, on any host) is taken over atomically by one worker and resumed as the
same trial: same number, same folder, same checkpoints, same MLflow run.

Claims go through the study lock, so counting and ``ask()`` are one step for all workers: a
study never runs more than ``n_trials``. A worker with nothing left to claim watches the other
workers' leases (``wait_for_running``) and takes over any that expires, so a study finishes with
``n_trials`` without a person.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from mental_health_hpo.crash_points import crash_point
from mental_health_hpo.hpo.coordination import Coordination
from mental_health_hpo.hpo.leases import Heartbeat, Lease, trial_resource, worker_resource
from mental_health_hpo.hpo.search_space import SearchSpace
from mental_health_hpo.hpo.study import StudyConfig, derived_seed, make_sampler
from mental_health_hpo.hpo.tally import FINISHED, SURPLUS, Progress, Tally
from mental_health_hpo.hpo.trial_context import (
    LeaseLost,
    Objective,
    StudyHooks,
    StudyRun,
    StudyStoppedError,
    TrialContext,
    TrialStopped,
)
from mental_health_hpo.hpo.trial_folder import TrialFolder
from mental_health_hpo.hpo.trial_outcome import FOLDER_STATE, call_objective, storage_exhausted
from mental_health_hpo.ops import HubAuthGate, is_auth_error, study_logging, trial_logging

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Claim:
    trial: optuna.Trial
    lease: Lease
    resumed: bool
    reported: frozenset[int] = frozenset()


@dataclass
class StudyRunner:
    """One worker's loop over one study; the state its steps share lives here."""

    study: optuna.Study
    config: StudyConfig
    space: SearchSpace
    base: dict[str, Any]
    objective: Objective
    study_dir: Path
    coordination: Coordination
    hooks: StudyHooks = field(default_factory=StudyHooks)
    auth_gate: HubAuthGate | None = None
    worker_info: dict[str, Any] = field(default_factory=dict)
    #: What trial deadlines are measured on (tests pass a clock of their own).
    clock: Callable[[], float] = time.monotonic
    _heartbeat: Heartbeat | None = field(default=None, init=False, repr=False)
    _started: float = field(default_factory=time.monotonic, init=False, repr=False)
    _durations: list[float] = field(default_factory=list, init=False, repr=False)

    @property
    def poll_s(self) -> float:
        return self.config.lease_s / 2

    def tally(self) -> Tally:
        return Tally.of(self.study, self.study.get_trials(deepcopy=False), self.config.n_trials)

    def run(self) -> StudyRun:
        """Work on the study until it is complete (or, without ``wait_for_running``, until
        nothing is left to claim). The result's tally says which."""
        leases, worker = self.coordination.leases, self.coordination.worker
        result = StudyRun(self.study, self.study_dir)
        with study_logging(self.study_dir, self.config.study_id), Heartbeat(leases) as beat:
            self._heartbeat = beat
            crash_point("before_worker_lease")
            me = leases.acquire(worker_resource(worker.owner), worker, self.worker_info)
            assert me is not None  # a fresh id: nobody else holds it
            # Not released at the end: it expires a lease period after the heartbeat stops,
            # so this worker's session run is not taken for abandoned while it closes.
            with beat.holding(me):
                if self.hooks.on_start is not None:
                    self.hooks.on_start()
                self._loop(result)
        return result

    def _loop(self, result: StudyRun) -> None:
        while True:
            self._finish_abandoned()
            claim = self._claim()
            if claim is not None:
                self._attempt(claim, result)
                continue
            tally = self.tally()
            if tally.running == 0 or not self.config.wait_for_running:
                result.tally = tally
                return
            time.sleep(self.poll_s)  # other workers run the rest: take over any that dies

    def _claim(self) -> _Claim | None:
        """The next trial this worker owns: an abandoned one first, else a new one if due."""
        leases, worker = self.coordination.leases, self.coordination.worker
        with self.coordination.lock.hold("claim"):
            # Leases before trials: a lease is released only after its trial is told, so a
            # trial still RUNNING after its lease was seen absent was abandoned, not finished.
            held = {row.resource: row for row in leases.live("trial:")}
            trials = self.study.get_trials(deepcopy=False)
            for frozen in trials:
                if frozen.state is not TrialState.RUNNING:
                    continue
                row = held.get(trial_resource(frozen.number))
                if row is None:
                    lease = leases.acquire(trial_resource(frozen.number), worker)
                elif row.dead_on(worker.host):
                    lease = leases.take_from_dead(row, worker)
                else:
                    continue
                if lease is not None and not self._still_running(frozen.number):
                    leases.release(lease)  # finished meanwhile by its live owner
                    continue
                if lease is not None:
                    trial = optuna.Trial(self.study, frozen._trial_id)
                    reported = frozenset(frozen.intermediate_values)
                    return _Claim(trial, lease, True, reported)
            tally = Tally.of(self.study, trials, self.config.n_trials)
            if tally.finished + tally.running >= self.config.n_trials:
                return None
            # Seeded from the history, so a killed and continued study asks what an unbroken
            # one asks: the same trials, the same best.
            seed = derived_seed(self.config.seed, len(trials))
            self.study.sampler = make_sampler(self.config, self.space, seed)
            trial = self.study.ask()
            lease = leases.acquire(trial_resource(trial.number), worker)
            assert lease is not None  # a fresh number: nobody else holds it
            recount = Tally.of(
                self.study, self.study.get_trials(deepcopy=False), self.config.n_trials
            )
            if recount.finished + recount.running > self.config.n_trials:
                # Something asked outside this lock: end the surplus now, never count it.
                trial.set_user_attr("end_reason", SURPLUS)
                self.study.tell(trial, state=TrialState.FAIL)
                leases.release(lease)
                logger.warning("Trial %d was surplus to n_trials and ended", trial.number)
                return None
            return _Claim(trial, lease, False)

    def _still_running(self, number: int) -> bool:
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        return any(t.number == number for t in running)

    def _attempt(self, claim: _Claim, result: StudyRun) -> None:
        assert self._heartbeat is not None
        started = time.monotonic()
        with self._heartbeat.holding(claim.lease):
            frozen = self._run_gated(claim)
        if frozen is None:
            return
        (result.resumed if claim.resumed else result.ran).append(frozen.number)
        self._durations.append(time.monotonic() - started)
        self._progress(frozen)

    def _run_gated(self, claim: _Claim) -> FrozenTrial | None:
        """``_run_one`` behind the hub gate: a 401/403 leaves the trial RUNNING, waits, resumes.

        When the gate finds the token accepted at once, the refusal is not the token's and the
        error is raised: re-running the trial would meet it again, forever.
        """
        while True:
            if self.auth_gate is not None:
                self.auth_gate.wait_until_authorized()  # no new trial, no download while refused
            try:
                return self._run_one(claim)
            except Exception as error:
                if self.auth_gate is None or not is_auth_error(error):
                    raise
                pauses = self.auth_gate.pauses
                self.auth_gate.wait_until_authorized()
                if self.auth_gate.pauses == pauses:
                    # The hub accepts the token, so the 401/403 is the repository's (gated
                    # terms not accepted, a private repository): no pause can change it.
                    raise
                logger.warning(
                    "Trial %d resumes after a hub authentication error: %s",
                    claim.trial.number,
                    error,
                )
                trial = optuna.Trial(self.study, claim.trial._trial_id)  # the same trial
                claim = _Claim(trial, claim.lease, True, claim.reported)

    def _run_one(self, claim: _Claim) -> FrozenTrial | None:
        """Run (or resume) one trial; None when it did not end here."""
        trial, lease = claim.trial, claim.lease
        assert self._heartbeat is not None
        beat = self._heartbeat
        folder = TrialFolder.of(self.study_dir, trial.number)
        with trial_logging(folder.logs, self.config.study_id, folder.trial_id):
            if lease.previous_owner:
                logger.warning(
                    "Taking over trial %d from %s, whose lease expired: resuming it",
                    trial.number,
                    lease.previous_owner,
                )
            if not folder.read():
                folder.transition("queued")
            folder.transition("preparing", resumed=claim.resumed, worker=lease.owner)
            sampled = self.space.suggest(trial, self.base)
            timeout = self.config.trial_timeout_s
            context = TrialContext(
                trial,
                folder,
                sampled,
                claim.resumed,
                self.clock() + timeout if timeout else None,
                set(claim.reported),
                lease_lost=lambda: beat.lost(lease),
                holds_lease=lambda: beat.confirm(lease),
                torch_threads=self._torch_threads(),
                study_name=self.config.name,
                check_every_steps=self.config.trial_timeout_check_every_steps,
                clock=self.clock,
            )
            folder.transition("running", params=sampled)
            try:
                outcome = call_objective(self.objective, context, self.auth_gate)
            except LeaseLost as lost:
                logger.warning("%s; leaving it to that worker", lost)
                return None
            except BaseException as error:
                if storage_exhausted(error):
                    self.coordination.leases.release(lease)  # free at once for the next worker
                    raise StudyStoppedError(
                        f"{self.tally().status(mine=1)}; this worker stopped: the disk is "
                        f"full. Trial {trial.number} stays RUNNING and resumes from its last "
                        f"checkpoint once space is freed. {error}"
                    ) from error
                if isinstance(error, KeyboardInterrupt | SystemExit):
                    self.coordination.leases.release(lease)
                    logger.warning(
                        "Interrupted: %s. Trial %d stays RUNNING and resumes from its last "
                        "checkpoint on the next start or on another worker",
                        self.tally().status(mine=1),
                        trial.number,
                    )
                raise  # a paused trial (hub refused) keeps its lease while it waits
            if beat.lost(lease) or not self.coordination.leases.renew(lease):
                logger.warning("Trial %d was taken over while finishing; leaving it", trial.number)
                return None
            folder.transition("finishing")
            try:
                trial.set_user_attr("end_reason", outcome.reason)
                if outcome.error is not None:
                    trial.set_user_attr("error", outcome.error)
                if outcome.state is TrialState.COMPLETE:
                    frozen = self.study.tell(trial, outcome.value)
                else:
                    frozen = self.study.tell(trial, state=outcome.state)
            except UpdateFinishedTrialError:
                logger.warning("Trial %d was finished by another worker", trial.number)
                return None
            crash_point("after_tell")
            self._finalize(frozen, lease)
            return frozen

    def _finalize(self, frozen: FrozenTrial, lease: Lease) -> None:
        """The trial's folder state, its run, its retention, then the lease. Idempotent: a
        worker killed anywhere in here leaves its lease to expire, and another worker repeats
        this step (:meth:`_finish_abandoned`)."""
        folder = TrialFolder.of(self.study_dir, frozen.number)
        final = FOLDER_STATE.get(frozen.state, "failed")
        if folder.read().get("state") != final:
            folder.transition(final, value=frozen.value, error=frozen.user_attrs.get("error"))  # type: ignore[arg-type]
        if self.hooks.on_trial_end is not None:
            self.hooks.on_trial_end(frozen, folder)
        self.coordination.leases.release(lease)

    def _finish_abandoned(self) -> None:
        """Finish trials whose worker died after ``tell`` but before their lease was released:
        once the lease expired, or at once when its holder is a dead process of this host."""
        leases, worker = self.coordination.leases, self.coordination.worker
        dead = {r.resource: r for r in leases.live("trial:") if r.dead_on(worker.host)}
        stale = [*leases.expired("trial:"), *dead]
        if not stale:
            return
        by_number = {t.number: t for t in self.study.get_trials(deepcopy=False, states=FINISHED)}
        for resource in stale:
            frozen = by_number.get(int(resource.split(":", 1)[1]))
            if frozen is None:
                continue  # still RUNNING: taken over by a claim instead
            row = dead.get(resource)
            lease = leases.take_from_dead(row, worker) if row else leases.acquire(resource, worker)
            if lease is not None:
                logger.warning(
                    "Finishing trial %d, whose worker died while finishing it", frozen.number
                )
                self._finalize(frozen, lease)

    def _torch_threads(self) -> int | None:
        """The study's setting, else the host's cores shared by the live workers on this host."""
        if self.config.torch_threads is not None:
            return self.config.torch_threads
        try:
            host = self.coordination.worker.host
            rows = self.coordination.leases.live("worker:")
            here = [r for r in rows if r.host == host and not r.dead_on(host)]
        except Exception:  # the database is away: leave torch's default
            return None
        return max(1, (os.cpu_count() or 1) // max(1, len(here)))

    def _progress(self, last: FrozenTrial) -> None:
        tally = self.tally()
        mean = sum(self._durations) / len(self._durations) if self._durations else None
        remaining = max(tally.n_trials - tally.finished - tally.running, 0) + tally.running
        progress = Progress(
            finished=tally.finished,
            n_trials=tally.n_trials,
            best_value=tally.best_value,
            best_trial=tally.best_trial,
            elapsed_s=time.monotonic() - self._started,
            eta_s=mean * remaining if mean is not None else None,
            last_trial=last.number,
            last_state=last.state.name.lower(),
            running=tally.running,
        )
        logger.info(progress.line(), extra={"progress": progress.__dict__})
        if self.hooks.on_progress is not None:
            self.hooks.on_progress(progress)


__all__ = [
    "LeaseLost",
    "Objective",
    "Progress",
    "StudyHooks",
    "StudyRun",
    "StudyRunner",
    "StudyStoppedError",
    "TrialContext",
    "TrialStopped",
]
