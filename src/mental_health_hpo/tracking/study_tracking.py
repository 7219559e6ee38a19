"""MLflow for a study run by any number of workers: one parent run per study, found by name.

- The study's parent run is named after the study and tagged ``hpo.study_parent``; the first
  worker creates it under the study lock, every other worker (on any host) finds it. A continued
  study reuses it. Each trial's run (``<study>.trial_0003``) nests under it, and so does each
  worker's kedro-mlflow session run.
- The parent carries progress and the best value as metrics, indexed by the number of the trial
  that just finished (one point per trial, so two workers never log the same step).
- On start and on completion every RUNNING run of the study that no live worker owns (a killed
  worker's session run, a trial run orphaned between ``tell`` and its close) ends as KILLED with
  an ``end_reason`` tag.

This is MLflow's implementation of :class:`mental_health_hpo.hpo.setup.StudyTracking`; the hpo
node hands :func:`open_study_tracking` to :func:`mental_health_hpo.hpo.worker.run_worker`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from mental_health_hpo.checkpointing import read_manifest
from mental_health_hpo.hpo.coordination import Coordination
from mental_health_hpo.hpo.objective import with_epoch_series
from mental_health_hpo.hpo.tally import Progress
from mental_health_hpo.hpo.trial_folder import TrialFolder
from mental_health_hpo.tracking import MetricsBuffer, TrialTracker, end_abandoned_runs
from mental_health_hpo.tracking.experiment_kind import (
    get_or_create_training_experiment,
    mark_training_experiment,
)
from mental_health_hpo.workspace import storage_at
from mental_health_hpo.workspace.layout import StudyLayout

logger = logging.getLogger(__name__)

EXPERIMENT_NAME = "mental_health_hpo"
PARENT_TAG = "hpo.study_parent"
_RUN_STATE = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "FINISHED"}


@dataclass
class StudyTracking:
    """The study's MLflow side for one worker."""

    tracker: TrialTracker
    study_name: str
    session_run_id: str | None

    @property
    def publisher(self) -> TrialTracker:
        return self.tracker

    @property
    def client(self) -> MlflowClient:
        return self.tracker.client

    @property
    def parent_run_id(self) -> str:
        assert self.tracker.parent_run_id is not None
        return self.tracker.parent_run_id

    def started(self, coordination: Coordination, study_dir: Path) -> None:
        """Once this worker's lease is held (so no other worker takes its run for abandoned):
        nest the session run, end what dead workers left RUNNING, send their buffers."""
        tag_session_run(self)
        self.end_abandoned(coordination, study_dir)
        self.replay_orphan_buffers(coordination)

    def flush(self) -> None:
        self.tracker.flush_buffer(attempts=5)

    def study_complete(
        self, coordination: Coordination, study_dir: Path, best: float | None
    ) -> None:
        self.end_abandoned(coordination, study_dir)
        self.finish_study(best)

    def trial_ended(self, frozen: FrozenTrial, folder: TrialFolder) -> None:
        self.close_trial(frozen, folder)

    def close_trial(self, frozen: FrozenTrial, folder: TrialFolder) -> None:
        """Publish the trial's whole journal once more (idempotent), tag its end, close its run."""
        record = folder.read()
        run_id = record.get("mlflow_run_id")
        manifest = read_manifest(storage_at(folder.checkpoints))
        if run_id and manifest is not None:
            self.tracker.publish(run_id, with_epoch_series(manifest.history))
        tags = {"state": frozen.state.name.lower()}
        for key in ("end_reason", "error"):
            if key in frozen.user_attrs:
                tags[key] = str(frozen.user_attrs[key])
        self.tracker.set_tags(run_id, tags)
        self.tracker.end(run_id, _RUN_STATE.get(frozen.state, "FAILED"))

    def progress(self, progress: Progress) -> None:
        values = {
            "hpo.finished": float(progress.finished),
            "hpo.completion": progress.completion,
            "hpo.running": float(progress.running),
        }
        if progress.best_value is not None:
            values["hpo.best_value"] = float(progress.best_value)
        if progress.eta_s is not None:
            values["hpo.eta_s"] = float(progress.eta_s)
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, progress.last_trial) for k, v in values.items()]
        try:
            self.client.log_batch(self.parent_run_id, metrics=metrics)
        except Exception as error:
            logger.warning("Could not log study progress to MLflow: %s", error)
        self.tracker.set_tags(self.parent_run_id, {"hpo.best_trial": str(progress.best_trial)})

    def end_abandoned(self, coordination: Coordination, study_dir: Path) -> list[str]:
        """End every RUNNING run of the study that no live worker owns; their ids."""
        try:
            running = self.client.search_runs(
                [self.tracker.experiment_id],
                filter_string=f"tags.study_id = '{self.study_name}' and "
                "attributes.status = 'RUNNING'",
                max_results=5000,
            )
        except Exception as error:
            logger.warning("Could not look for abandoned MLflow runs: %s", error)
            return []
        host = coordination.worker.host
        trial_rows = [r for r in coordination.leases.live("trial:") if not r.dead_on(host)]
        worker_rows = [r for r in coordination.leases.live("worker:") if not r.dead_on(host)]
        live_trials = {row.resource.split(":", 1)[1] for row in trial_rows}
        live: set[str] = {self.parent_run_id}
        live |= {str(r.info["session_run_id"]) for r in worker_rows if r.info.get("session_run_id")}
        live |= {r.info.run_id for r in running if r.data.tags.get("trial_number") in live_trials}
        abandoned = [r.info.run_id for r in running if r.info.run_id not in live]
        if abandoned:
            end_abandoned_runs(
                self.client, self.tracker.experiment_id, self.study_name, sorted(live - {None})
            )
        return abandoned

    def replay_orphan_buffers(self, coordination: Coordination) -> None:
        """Send what dead workers of the study buffered in an outage (their files stay else).

        A buffer file is named after its worker's id; a worker with no live lease is gone.
        """
        host = coordination.worker.host
        rows = [r for r in coordination.leases.live("worker:") if not r.dead_on(host)]
        live = {row.owner.rsplit(":", 1)[-1] for row in rows} | {coordination.worker.id}
        folder = self.tracker.buffer.path.parent
        for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
            if path.stem not in live and self.tracker.replay_buffer_of(path):
                logger.info("Sent the metrics that worker %s buffered before it died", path.stem)

    def finish_study(self, best_value: float | None) -> None:
        self.tracker.set_tags(self.parent_run_id, {"hpo.state": "complete"})
        if best_value is not None:
            self.tracker.set_tags(self.parent_run_id, {"hpo.best_value": str(best_value)})
        self.tracker.end(self.parent_run_id, "FINISHED")


def open_study_tracking(
    study_name: str, coordination: Coordination, study_dir: Path
) -> StudyTracking:
    """Find or create the study's parent run; nest this worker's session run under it."""
    session = mlflow.active_run()
    client = MlflowClient(mlflow.get_tracking_uri())
    if session is not None:
        experiment_id = session.info.experiment_id
        mark_training_experiment(client, experiment_id)
    else:
        experiment_id = get_or_create_training_experiment(client, EXPERIMENT_NAME)
    with coordination.lock.hold("mlflow-parent-run"):
        found = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{study_name}'",
            max_results=1,
        )
        if found:
            parent = found[0].info.run_id
            if found[0].info.status != "RUNNING":  # a continued study reuses its parent run
                client.update_run(parent, status=RunStatus.to_string(RunStatus.RUNNING))
        else:
            tags = {PARENT_TAG: study_name, "study_id": study_name, "mlflow.runName": study_name}
            parent = client.create_run(experiment_id, run_name=study_name, tags=tags).info.run_id
    session_id = session.info.run_id if session is not None else None
    # One buffer file per worker: workers share the study folder, never a buffer.
    buffer = MetricsBuffer(StudyLayout(study_dir).mlflow_buffer(coordination.worker.id))
    tracker = TrialTracker(client, experiment_id, buffer, parent)
    return StudyTracking(tracker, study_name, session_id)


def ensure_experiment(tracking_uri: str) -> None:
    """Create the project's MLflow experiment unless it exists (before workers start: the
    get-or-create of kedro-mlflow is not atomic); idempotent."""
    client = MlflowClient(tracking_uri)
    try:  # created and tagged as training runs (mlflow.experimentKind), or tagged if it exists
        get_or_create_training_experiment(client, EXPERIMENT_NAME)
    except MlflowException:  # created meanwhile by another init: tag it
        get_or_create_training_experiment(client, EXPERIMENT_NAME)


def tag_session_run(tracking: StudyTracking) -> None:
    """After this worker's lease exists (so no other worker takes its run for abandoned)."""
    if tracking.session_run_id is None:
        return
    try:
        session = tracking.client.get_run(tracking.session_run_id)
    except Exception as error:
        logger.warning("Could not read the session run: %s", error)
        return
    _tag_session_run(tracking.client, session, tracking.study_name, tracking.parent_run_id)


def _tag_session_run(client: MlflowClient, session: Any, study_name: str, parent: str) -> None:
    """Nest kedro-mlflow's run under the study's parent.

    (Its ``runner`` tag is the runner's class name already: ``hooks.RunnerNameHooks``, for
    every pipeline.)
    """
    tags = {"study_id": study_name, "mlflow.parentRunId": parent}
    for key, value in tags.items():
        try:
            client.set_tag(session.info.run_id, key, value)
        except Exception as error:
            logger.warning("Could not tag the session run: %s", error)
