"""One nested MLflow run per trial, reused when the trial resumes, fed only committed metrics.

Why this shape (see docs/architecture.md and the design notes):
- a trial's run id is kept in its ``trial.json``, so a resumed trial logs into the same run;
- params are immutable in MLflow: only params the run does not hold yet are logged;
- metrics are published from the checkpoint manifest's journal with their journaled timestamps,
  after the epoch's commit, so a replay (after a crash or an outage) repeats points exactly and
  MLflow stores each (key, step) once;
- when the store is unreachable, points go to the disk buffer and training goes on: every call
  goes through a circuit breaker (tracking/breaker.py), so MLflow's own retries never stall
  training for longer than the breaker's call timeout;
- a trial that starts during an outage gets a pending reference in place of a run id
  (tracking/pending.py); its run is created, and its buffered journal replayed, once the store
  is back; closes and tags that failed are applied then too.

Every run the tracker opens carries ``study_id`` and an owner tag (host and pid), so
``end_abandoned_runs`` (tracking/abandoned.py) can tell a run whose process died from a live one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient

from mental_health_hpo.crash_points import crash_point
from mental_health_hpo.ops import mask_named, mask_obj
from mental_health_hpo.tracking.abandoned import HEARTBEAT_TAG, OWNER_TAG, STUDY_TAG, owner_id
from mental_health_hpo.tracking.breaker import CircuitBreaker, TrackerUnavailableError
from mental_health_hpo.tracking.buffer import MetricPoint, MetricsBuffer
from mental_health_hpo.tracking.masking import flatten_params
from mental_health_hpo.tracking.pending import PendingRun, PendingRuns, is_pending
from mental_health_hpo.workspace.layout import MLFLOW_PENDING_NAME

logger = logging.getLogger(__name__)

_BATCH = 500
T = TypeVar("T")

PENDING_REF_TAG = "mental_health_hpo.pending_ref"


def _now_ms() -> int:
    return int(time.time() * 1000)


class JournalRecord(Protocol):
    """A committed epoch of the checkpoint manifest's metrics journal."""

    @property
    def step(self) -> int: ...

    @property
    def metrics(self) -> dict[str, float]: ...

    @property
    def timestamp_ms(self) -> int: ...


class TrialTracker:
    """Publishes one study's trials to MLflow, buffering on outages; never raises on one.

    The small API the study runner uses:
    - ``start(existing_run_ref, run_name, params, tags)`` -> a run id, or a pending reference
      when the store is down (store it in ``trial.json`` as the run id);
    - ``publish(run_ref, records)`` -> True when the records reached the store;
    - ``ensure_run(run_ref)`` -> the real run id (creating a pending run now if the store is
      back), or None; write it back into ``trial.json`` when it differs;
    - ``set_tags``, ``end(run_ref, state)``: applied now, or later when the store is back;
    - ``flush_buffer()``: create pending runs, replay buffered metrics, apply deferred tags and
      closes; True when nothing is left waiting. Call it at study start and end;
    - ``claim(run_id)``: tag a run (kedro-mlflow's parent run) as this study's and this process's.
    """

    def __init__(
        self,
        client: MlflowClient,
        experiment_id: str,
        buffer: MetricsBuffer,
        parent_run_id: str | None = None,
        breaker: CircuitBreaker | None = None,
        pending: PendingRuns | None = None,
    ) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.buffer = buffer
        self.parent_run_id = parent_run_id
        self.breaker = breaker or CircuitBreaker()
        self.pending = pending or PendingRuns(_pending_path(buffer.path))

    def _call(
        self, action: Callable[..., T], *args: Any, key: str | None = None, **kwargs: Any
    ) -> T:
        return self.breaker.call(action, *args, key=key, **kwargs)

    # --- runs -------------------------------------------------------------------------------

    def start(
        self,
        existing_run_id: str | None,
        run_name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str],
    ) -> str | None:
        """Create the trial's run, or reopen it on resume; a pending reference in an outage."""
        user_tags = {**mask_obj(dict(tags)), OWNER_TAG: owner_id()}
        flat = flatten_params(params)
        if is_pending(existing_run_id):
            assert existing_run_id is not None
            resolved = self.ensure_run(existing_run_id)
            if resolved is None:  # still down: the tags wait with the pending run
                self.pending.defer(existing_run_id, tags=user_tags)
                return existing_run_id
            existing_run_id = resolved
        if not existing_run_id:
            ref = self.pending.reserve(
                PendingRun(
                    self.experiment_id,
                    run_name,
                    self._creation_tags(run_name, user_tags),
                    flat,
                    self.parent_run_id,
                    _now_ms(),
                )
            )
            run_id = self.ensure_run(ref)
            if run_id is not None:
                self.pending.forget(ref)  # trial.json gets the run id itself
                return run_id
            logger.warning(
                "MLflow unreachable when starting %s; its run is created and its metrics "
                "replayed when the store is back (pending reference %s)",
                run_name,
                ref,
            )
            return ref
        try:
            self._reopen(existing_run_id, user_tags)
            self._log_new_params(existing_run_id, flat)
        except Exception as error:  # reopened later, with the new tags
            self.pending.defer(existing_run_id, tags=user_tags, status="RUNNING")
            logger.warning("MLflow unreachable when resuming %s (%s)", run_name, error)
        return existing_run_id

    def _creation_tags(self, run_name: str, tags: Mapping[str, str]) -> dict[str, str]:
        run_tags = {**tags, "mlflow.runName": run_name}
        if self.parent_run_id:
            run_tags["mlflow.parentRunId"] = self.parent_run_id
        return run_tags

    def _reopen(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._call(
            self.client.update_run,
            run_id,
            status=RunStatus.to_string(RunStatus.RUNNING),
            key=f"status:{run_id}",
        )
        self._call(self.client.log_batch, run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def ensure_run(self, run_ref: str | None) -> str | None:
        """The real run id of ``run_ref``, creating its pending run now if the store answers."""
        if not run_ref or not is_pending(run_ref):
            return run_ref
        run = self.pending.get(run_ref)
        if run is None:
            logger.warning("Unknown pending run reference %s: its metrics cannot be sent", run_ref)
            return None
        if run.run_id:
            return run.run_id
        try:
            run_id = (run.create_attempts and self._find_created(run_ref)) or self._create_pending(
                run_ref
            )
            self._log_new_params(run_id, run.params)
        except Exception as error:
            logger.info("Run %s still waits for the tracking store: %s", run.run_name, error)
            return None
        self.pending.created(run_ref, run_id)
        if run.create_attempts:
            logger.info("Created the run of %s (%s) after an outage", run.run_name, run_id)
        return run_id

    def _runs_of(self, run_ref: str) -> list[Any]:
        return list(
            self._call(
                self.client.search_runs,
                [self.experiment_id],
                filter_string=f"tags.`{PENDING_REF_TAG}` = '{run_ref}'",
                order_by=["attributes.start_time ASC"],
                max_results=20,
            )
        )

    def _find_created(self, run_ref: str) -> str | None:
        """A run created for ``run_ref`` by a call that timed out but then went through."""
        found = self._runs_of(run_ref)
        return str(found[0].info.run_id) if found else None

    def _drop_late_twins(self) -> bool:
        """Delete empty runs that a timed-out create of a pending run made after all.

        Why: a create that timed out goes on inside MLflow's retries and may land minutes
        later, after the run was created again; that twin holds only the creation tags.
        """
        done = True
        for ref, run in self.pending.retried_runs():
            try:
                for twin in self._runs_of(ref):
                    empty = not twin.data.metrics and not twin.data.params
                    if twin.info.run_id != run.run_id and empty:
                        self._call(self.client.delete_run, twin.info.run_id)
                        logger.info(
                            "Deleted %s, a late twin of run %s", twin.info.run_id, run.run_id
                        )
            except Exception as error:
                logger.info("Could not check %s for late twins: %s", run.run_name, error)
                done = False
        return done

    def _create_pending(self, run_ref: str) -> str:
        self.pending.attempting(run_ref)
        run = self.pending.get(run_ref)
        assert run is not None
        created = self._call(
            self.client.create_run,
            run.experiment_id,
            start_time=run.start_time_ms,
            tags={**run.tags, PENDING_REF_TAG: run_ref},
            run_name=run.run_name,
        )
        return str(created.info.run_id)

    def claim(self, run_id: str | None, study_name: str) -> None:
        """Tag ``run_id`` as opened by this process for ``study_name`` (see abandoned.py)."""
        self.set_tags(run_id, {STUDY_TAG: study_name, OWNER_TAG: owner_id()})

    def _log_new_params(self, run_id: str, params: dict[str, str]) -> None:
        held = self._call(self.client.get_run, run_id).data.params
        conflicts = {k: (held[k], v) for k, v in params.items() if k in held and held[k] != v}
        if conflicts:
            logger.warning("Run %s keeps its logged params %s", run_id, sorted(conflicts))
        new = [Param(k, v) for k, v in params.items() if k not in held]
        for start in range(0, len(new), 100):
            self._call(self.client.log_batch, run_id, params=new[start : start + 100])

    # --- tags, metrics, close -----------------------------------------------------------------

    def set_tags(self, run_id: str | None, tags: Mapping[str, Any]) -> None:
        """Set tags now, or remember them for when the store (or the run) exists."""
        if not run_id or not tags:
            return
        masked = {k: mask_named(k, str(v)) for k, v in tags.items()}
        real = self._resolved(run_id)
        if real is None:
            self.pending.defer(run_id, tags=masked)
            return
        try:
            self._call(self.client.log_batch, real, tags=[RunTag(k, v) for k, v in masked.items()])
        except Exception as error:
            logger.warning("Could not set tags on run %s now (%s); retried later", real, error)
            self.pending.defer(real, tags=masked)

    def _resolved(self, run_ref: str) -> str | None:
        """The run id to send to: ``run_ref`` itself, or what a pending reference resolves to."""
        if not is_pending(run_ref):
            return run_ref
        return self.pending.resolve(run_ref) or (
            None if self.breaker.is_open else self.ensure_run(run_ref)
        )

    def publish(self, run_id: str | None, records: Iterable[JournalRecord]) -> bool:
        """Send committed epochs; on failure buffer them. True when they reached the store."""
        points = [
            MetricPoint(run_id or "", key, float(value), int(record.step), record.timestamp_ms)
            for record in records
            for key, value in record.metrics.items()
        ]
        if not points or not run_id:
            return False
        real = self._resolved(run_id)
        if real is None:
            self.buffer.append(points)
            crash_point("buffered_before_run")
            return False
        self.buffer.replay(self._send)  # one quick try; never blocks training
        try:
            self._send(real, points, heartbeat=True)
            return True
        except Exception as error:
            logger.warning(
                "MLflow unreachable (%s): buffering %d metric points", error, len(points)
            )
            self.buffer.append(points)
            return False

    def _send(self, run_ref: str, points: list[MetricPoint], heartbeat: bool = False) -> None:
        run_id = self._resolved(run_ref)
        if run_id is None:
            raise TrackerUnavailableError(f"the run of {run_ref} does not exist yet")
        metrics = [Metric(p.key, p.value, p.timestamp_ms, p.step) for p in points]
        tags = [RunTag(HEARTBEAT_TAG, str(_now_ms()))] if heartbeat else []
        for start in range(0, len(metrics), _BATCH):
            self._call(
                self.client.log_batch, run_id, metrics=metrics[start : start + _BATCH], tags=tags
            )
            tags = []

    def replay_buffer_of(self, path: Path) -> bool:
        """Send another (dead) worker's buffered points; True when none is left in ``path``.

        Why: a worker killed during an outage leaves its buffer behind, and no later worker
        writes to that file, so without this its points would wait there for ever.
        """
        if path == self.buffer.path:
            return self.buffer.replay(self._send)
        return MetricsBuffer(path).replay(self._send)

    def flush_buffer(self, attempts: int = 5, first_delay_s: float = 1.0) -> bool:
        """Create pending runs, replay the buffer, apply deferred tags and closes (with backoff).

        True when nothing is left waiting for the store.
        """
        delay = first_delay_s
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                self.breaker.reset()  # the caller asked to wait and try again
            created = all(self.ensure_run(ref) for ref, _ in self.pending.runs_to_create())
            replayed = self.buffer.replay(self._send)
            updated = self._apply_updates()
            if created and replayed and updated:
                self._drop_late_twins()  # best effort: a twin may land after any check
                return True
            if attempt < attempts:
                time.sleep(delay)
                delay *= 2
        return False

    def _apply_updates(self) -> bool:
        done = True
        for run_ref, update in self.pending.updates():
            run_id = self._resolved(run_ref)
            try:
                if run_id is None:
                    raise TrackerUnavailableError(f"the run of {run_ref} does not exist yet")
                if update.tags:
                    self._call(
                        self.client.log_batch,
                        run_id,
                        tags=[RunTag(k, v) for k, v in update.tags.items()],
                    )
                if update.status == "RUNNING":
                    self._call(
                        self.client.update_run,
                        run_id,
                        status=update.status,
                        key=f"status:{run_id}",
                    )
                elif update.status:
                    self._call(
                        self.client.set_terminated,
                        run_id,
                        status=update.status,
                        end_time=update.end_time_ms,
                        key=f"status:{run_id}",
                    )
            except Exception as error:
                logger.info("Deferred update of run %s still waits: %s", run_ref, error)
                done = False
                continue
            self.pending.applied(run_ref, update)
        return done

    def end(self, run_id: str | None, state: str) -> None:
        """Close the run (FINISHED/FAILED/KILLED) now, or as soon as the store is back."""
        if not run_id:
            return
        real = self._resolved(run_id)
        try:
            if real is None:
                raise TrackerUnavailableError(f"the run of {run_id} does not exist yet")
            self._call(self.client.set_terminated, real, status=state, key=f"status:{real}")
        except Exception as error:
            logger.warning("Could not close run %s now (%s); it is closed later", run_id, error)
            self.pending.defer(real or run_id, status=state, end_time_ms=_now_ms())


def _pending_path(buffer_path: Path) -> Path:
    return buffer_path.with_name(MLFLOW_PENDING_NAME)
