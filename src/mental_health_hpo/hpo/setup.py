"""Everything a worker builds from ``params:hpo`` before the first trial, in one place.

Production (:func:`~mental_health_hpo.hpo.worker.run_worker`) and the tests build the runner
through :class:`StudySetup`, so a test runs the loop, the hooks and the coordination that a
worker runs. Tracking reaches the study through the :class:`StudyTracking` protocol (MLflow's
implementation lives in ``tracking.study_tracking``): this module never imports mlflow.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import optuna
import sqlalchemy as sa
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial

from mental_health_hpo.checkpointing import CheckpointSettings, RetentionPolicy, StudyRetention
from mental_health_hpo.hpo.coordination import Coordination, coordination_for
from mental_health_hpo.hpo.leases import LeaseStore
from mental_health_hpo.hpo.objective import TrialPublisher
from mental_health_hpo.hpo.preflight import StudyConfigError, validate_before_first_trial
from mental_health_hpo.hpo.runner import Objective, StudyHooks, StudyRunner
from mental_health_hpo.hpo.search_space import SearchSpace
from mental_health_hpo.hpo.study import StudyConfig, open_study
from mental_health_hpo.hpo.tally import FINISHED, Progress
from mental_health_hpo.hpo.trial_folder import TrialFolder
from mental_health_hpo.ops import HubAuthGate, check_hub_token, hub_offline, needs_hub
from mental_health_hpo.ops.credentials import password_in_url_warning
from mental_health_hpo.ops.locations import Location
from mental_health_hpo.workspace.layout import StudyLayout

logger = logging.getLogger(__name__)

#: Where users set ``params:hpo`` (named in configuration errors).
PARAMETERS_FILE = "conf/base/parameters_hpo.yml"
_CHECKPOINTING_KEYS = ("mode", "writer", "policy", "overrides")
_RETIRED_CHECKPOINTING_KEYS = {
    "enabled": "mode: disabled (or mode: write)",
    "dry_run": "mode: dry_run",
    "async_save": "writer: async (or writer: sync)",
}


class StudyTracking(Protocol):
    """What a worker tells the study's tracker. ``trial_ended`` must be idempotent (a worker
    taking over a trial killed while finishing calls it again); an unreachable tracking store
    must not stop the study (MLflow's implementation buffers and logs a warning)."""

    @property
    def publisher(self) -> TrialPublisher | None: ...

    @property
    def session_run_id(self) -> str | None: ...

    def started(self, coordination: Coordination, study_dir: Path) -> None:
        """Once this worker's lease is held: tidy what dead workers left."""

    def trial_ended(self, frozen: FrozenTrial, folder: TrialFolder) -> None: ...

    def progress(self, progress: Progress) -> None: ...

    def flush(self) -> None:
        """Send what was buffered, before the worker exits."""

    def study_complete(
        self, coordination: Coordination, study_dir: Path, best: float | None
    ) -> None:
        """The complete study's result is written: close what is left open."""


@dataclass(frozen=True)
class NoTracking:
    """A study tracked nowhere (tests, benchmarks): the same calls, nothing sent."""

    publisher: TrialPublisher | None = None
    session_run_id: str | None = None

    def started(self, coordination: Coordination, study_dir: Path) -> None:
        return None

    def trial_ended(self, frozen: FrozenTrial, folder: TrialFolder) -> None:
        return None

    def progress(self, progress: Progress) -> None:
        return None

    def flush(self) -> None:
        return None

    def study_complete(
        self, coordination: Coordination, study_dir: Path, best: float | None
    ) -> None:
        return None


def checkpoint_settings(params: Mapping[str, Any]) -> CheckpointSettings:
    """``hpo.checkpointing`` as settings; an unknown or retired key names itself and the fix."""
    for key in params:
        if key in _RETIRED_CHECKPOINTING_KEYS:
            raise StudyConfigError(
                f"hpo.checkpointing.{key} is no longer read: write "
                f"{_RETIRED_CHECKPOINTING_KEYS[key]} instead, in {PARAMETERS_FILE} "
                "(or the --params / environment that sets it)"
            )
        if key not in _CHECKPOINTING_KEYS:
            raise StudyConfigError(
                f"hpo.checkpointing.{key} is not a setting (known: "
                f"{', '.join(_CHECKPOINTING_KEYS)}); remove or rename it in {PARAMETERS_FILE}"
            )
    policy = RetentionPolicy.load(params.get("policy", "default"), params.get("overrides"))
    return CheckpointSettings(
        policy=policy, mode=params.get("mode", "write"), writer=params.get("writer", "auto")
    )


def prepare_storage(storage: str) -> None:
    """Create (or migrate) Optuna's tables and the lease table; idempotent."""
    RDBStorage(storage)
    LeaseStore(sa.create_engine(storage), "init", 60.0)


@dataclass
class StudySetup:
    """The validated ``params:hpo`` of one worker, and the study it opens."""

    config: StudyConfig
    space: SearchSpace
    base: dict[str, Any]
    checkpointing: CheckpointSettings
    metric: str
    #: The study's shared files: a folder, or a bucket prefix.
    study_dir: Location
    coordination: Coordination
    hub: dict[str, Any] = field(default_factory=dict)
    #: This worker's local folder of the study (logs, outage buffers, checkpoint cache); the
    #: study folder itself when that is a folder.
    work_dir: Path | None = None

    @property
    def local_dir(self) -> Path:
        return self.work_dir if self.work_dir is not None else StudyLayout(self.study_dir).folder

    @classmethod
    def from_params(cls, hpo: Mapping[str, Any], project_root: Path) -> StudySetup:
        config = StudyConfig(**hpo.get("study", {}))
        warning = password_in_url_warning(config.storage, "hpo.study.storage", "study storage")
        if warning:
            logger.warning(warning)
        base = dict(hpo.get("base", {}))
        metric = validate_before_first_trial(base)  # before any trial can fail on it
        checkpointing = checkpoint_settings(hpo.get("checkpointing", {}))
        study_dir = config.study_dir(project_root)
        work_dir = config.work_dir(project_root)
        work_dir.mkdir(parents=True, exist_ok=True)
        coordination = coordination_for(config, project_root)
        space = SearchSpace.from_params(hpo.get("search_space", {}))
        hub = dict(hpo.get("hub", {}))
        return cls(
            config, space, base, checkpointing, metric, study_dir, coordination, hub, work_dir
        )

    def open(self, dataset_fingerprint: Mapping[str, Any], project_root: Path) -> optuna.Study:
        study = open_study(self.config, self.space, project_root, self.metric)
        ours = dataset_fingerprint.get("fingerprint")
        theirs = study.user_attrs.get("dataset_fingerprint")
        if theirs is not None and ours is not None and theirs != ours:
            raise ValueError(
                f"study {self.config.name!r} was run on dataset {theirs}, this worker ingested "
                f"{ours}: every worker must ingest the same data (same data_ingest parameters "
                "and source). Fix this worker's data_ingest, or use another hpo.study.name."
            )
        study.set_user_attr("optimization_metric", self.metric)
        study.set_user_attr("dataset_fingerprint", ours)
        return study

    def hub_gate(self) -> HubAuthGate | None:
        encoder = str(self.base.get("model", {}).get("encoder", "packaged:all-minilm-l6-v2"))
        if not needs_hub(encoder):
            return None
        if not hub_offline():
            check_hub_token()  # before any download; raises with the login command
        return HubAuthGate(recheck_interval_s=float(self.hub.get("recheck_interval_s", 300)))

    def runner(
        self,
        study: optuna.Study,
        objective: Objective,
        tracking: StudyTracking | None = None,
        gate: HubAuthGate | None = None,
    ) -> StudyRunner:
        """The study loop with this worker's hooks: tracking, then study retention."""
        tracked: StudyTracking = tracking if tracking is not None else NoTracking()
        hooks = StudyHooks(
            on_trial_end=lambda frozen, folder: self._trial_end(tracked, frozen, folder),
            on_progress=tracked.progress,
            on_start=lambda: self._start(tracked, study),
        )
        info = {"session_run_id": tracked.session_run_id}
        return StudyRunner(
            study, self.config, self.space, self.base, objective, self.study_dir,
            self.coordination, hooks, gate, info, work_dir=self.local_dir,
        )  # fmt: skip

    @property
    def retention(self) -> StudyRetention:
        """Study retention under the study lock that holds across this study's workers."""
        return StudyRetention(
            self.study_dir, self.checkpointing.policy, self.metric, self.coordination.lock
        )

    def _start(self, tracking: StudyTracking, study: optuna.Study) -> None:
        tracking.started(self.coordination, self.local_dir)
        finished = study.get_trials(deepcopy=False, states=FINISHED)
        self.retention.reconcile(StudyLayout(self.study_dir).trial(t.number).path for t in finished)

    def _trial_end(self, tracking: StudyTracking, frozen: FrozenTrial, folder: TrialFolder) -> None:
        """Idempotent: run again by a worker that takes over a trial killed while finishing."""
        tracking.trial_ended(frozen, folder)
        self.retention.trial_finished(folder.path)


__all__ = [
    "PARAMETERS_FILE",
    "NoTracking",
    "StudySetup",
    "StudyTracking",
    "checkpoint_settings",
    "prepare_storage",
]
