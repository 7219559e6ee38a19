"""One nested MLflow run per trial, reused when the trial resumes, fed only committed metrics.

Why this shape (see docs/architecture.md and the design notes):
- a trial's run id is kept in its ``trial.json``, so a resumed trial logs into the same run;
- params are immutable in MLflow: only params the run does not hold yet are logged;
- metrics are published from the checkpoint manifest's journal with their journaled timestamps,
  after the epoch's commit, so a replay (after a crash or an outage) repeats points exactly and
  MLflow stores each (key, step) once;
- when the store is unreachable, points go to the disk buffer and training goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient

from mental_health_hpo.mappings import flatten
from mental_health_hpo.ops import mask_obj, mask_secrets
from mental_health_hpo.tracking.buffer import MetricPoint, MetricsBuffer

logger = logging.getLogger(__name__)

MAX_PARAM_LENGTH = 6000
_BATCH = 500


class JournalRecord(Protocol):
    """A committed epoch of the checkpoint manifest's metrics journal."""

    @property
    def step(self) -> int: ...

    @property
    def metrics(self) -> dict[str, float]: ...

    @property
    def timestamp_ms(self) -> int: ...


def flatten_params(params: Mapping[str, Any]) -> dict[str, str]:
    """``{"model": {"loss": "bce"}}`` -> ``{"model.loss": "bce"}``: masked strings, MLflow-sized."""
    return {k: mask_secrets(str(v))[:MAX_PARAM_LENGTH] for k, v in flatten(params).items()}


class TrialTracker:
    """Publishes one study's trials to MLflow, buffering on outages."""

    def __init__(
        self,
        client: MlflowClient,
        experiment_id: str,
        buffer: MetricsBuffer,
        parent_run_id: str | None = None,
    ) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.buffer = buffer
        self.parent_run_id = parent_run_id

    def start(
        self,
        existing_run_id: str | None,
        run_name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str],
    ) -> str | None:
        """Create the trial's run, or reopen it on resume; None when the store is unreachable."""
        try:
            run_id = self._open(existing_run_id, run_name, tags)
            self._log_new_params(run_id, flatten_params(params))
            return run_id
        except Exception as error:
            logger.warning(
                "MLflow unreachable when starting %s (%s); metrics stay in the trial's journal "
                "and are published when it is back",
                run_name,
                error,
            )
            return None

    def _open(self, existing_run_id: str | None, run_name: str, tags: Mapping[str, str]) -> str:
        if existing_run_id:
            self.client.update_run(existing_run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            self.set_tags(existing_run_id, tags)
            return existing_run_id
        run_tags = {**mask_obj(dict(tags)), "mlflow.runName": run_name}
        if self.parent_run_id:
            run_tags["mlflow.parentRunId"] = self.parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=run_tags)
        return str(run.info.run_id)

    def _log_new_params(self, run_id: str, params: dict[str, str]) -> None:
        held = self.client.get_run(run_id).data.params
        conflicts = {k: (held[k], v) for k, v in params.items() if k in held and held[k] != v}
        if conflicts:
            logger.warning("Run %s keeps its logged params %s", run_id, sorted(conflicts))
        new = [Param(k, v) for k, v in params.items() if k not in held]
        for start in range(0, len(new), 100):
            self.client.log_batch(run_id, params=new[start : start + 100])

    def set_tags(self, run_id: str | None, tags: Mapping[str, Any]) -> None:
        """Set tags, never failing the caller."""
        if not run_id or not tags:
            return
        try:
            self.client.log_batch(
                run_id, tags=[RunTag(k, mask_secrets(str(v))) for k, v in tags.items()]
            )
        except Exception as error:
            logger.warning("Could not set tags on run %s: %s", run_id, error)

    def publish(self, run_id: str | None, records: Iterable[JournalRecord]) -> bool:
        """Send committed epochs; on failure buffer them. True when they reached the store."""
        points = [
            MetricPoint(run_id or "", key, float(value), int(record.step), record.timestamp_ms)
            for record in records
            for key, value in record.metrics.items()
        ]
        if not points or not run_id:
            return False
        self.buffer.replay(self._send)  # one quick try; never blocks training
        try:
            self._send(run_id, points)
            return True
        except Exception as error:
            logger.warning(
                "MLflow unreachable (%s): buffering %d metric points", error, len(points)
            )
            self.buffer.append(points)
            return False

    def _send(self, run_id: str, points: list[MetricPoint]) -> None:
        metrics = [Metric(p.key, p.value, p.timestamp_ms, p.step) for p in points]
        for start in range(0, len(metrics), _BATCH):
            self.client.log_batch(run_id, metrics=metrics[start : start + _BATCH])

    def flush_buffer(self, attempts: int = 5, first_delay_s: float = 1.0) -> bool:
        """Replay the outage buffer with exponential backoff; True when it is empty."""
        return self.buffer.replay(self._send, attempts=attempts, first_delay_s=first_delay_s)

    def end(self, run_id: str | None, state: str) -> None:
        """Close the run: FINISHED for completed or pruned trials, FAILED for failed ones."""
        if not run_id:
            return
        try:
            self.client.set_terminated(run_id, status=state)
        except Exception as error:
            logger.warning("Could not close run %s: %s", run_id, error)
