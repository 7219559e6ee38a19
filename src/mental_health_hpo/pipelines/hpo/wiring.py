"""Everything the hpo node builds from ``params:hpo`` before the first trial, in one place.

Kept out of the node so the node reads as what it does: validate, open, run, conclude.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial

from mental_health_hpo.checkpointing import RetentionPolicy, code_version, load_policy
from mental_health_hpo.checkpointing.study_retention import StudyRetention
from mental_health_hpo.hpo.coordination import Coordination, coordination_for
from mental_health_hpo.hpo.objective import TrainingObjective
from mental_health_hpo.hpo.preflight import validate_before_first_trial
from mental_health_hpo.hpo.runner import StudyHooks, StudyRunner
from mental_health_hpo.hpo.search_space import SearchSpace
from mental_health_hpo.hpo.study import StudyConfig, open_study
from mental_health_hpo.hpo.tally import FINISHED, Progress
from mental_health_hpo.hpo.trial_folder import TrialFolder
from mental_health_hpo.ops import HubAuthGate, check_hub_token, hub_offline, needs_hub
from mental_health_hpo.ops.credentials import password_in_url_warning
from mental_health_hpo.pipelines.hpo.study_tracking import (
    StudyTracking,
    tag_session_run,
)

logger = logging.getLogger(__name__)


@dataclass
class StudySetup:
    """The validated ``params:hpo`` of one worker, and the study it opens."""

    config: StudyConfig
    space: SearchSpace
    base: dict[str, Any]
    checkpointing: dict[str, Any]
    policy: RetentionPolicy
    metric: str
    study_dir: Path
    coordination: Coordination

    @classmethod
    def from_params(cls, hpo: dict[str, Any], project_root: Path) -> StudySetup:
        config = StudyConfig(**hpo.get("study", {}))
        warning = password_in_url_warning(config.storage, "hpo.study.storage", "study storage")
        if warning:
            logger.warning(warning)
        base = dict(hpo.get("base", {}))
        metric = validate_before_first_trial(base)  # before any trial can fail on it
        checkpointing = dict(hpo.get("checkpointing", {}))
        policy = load_policy(checkpointing.get("policy", "default"), checkpointing.get("overrides"))
        study_dir = config.study_dir(project_root)
        study_dir.mkdir(parents=True, exist_ok=True)
        space = SearchSpace.from_params(hpo.get("search_space", {}))
        coordination = coordination_for(config, project_root)
        return cls(config, space, base, checkpointing, policy, metric, study_dir, coordination)

    def open(self, dataset_fingerprint: dict[str, Any], project_root: Path) -> optuna.Study:
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

    def hub_gate(self, hpo: dict[str, Any]) -> HubAuthGate | None:
        encoder = str(self.base.get("model", {}).get("encoder", "packaged:all-minilm-l6-v2"))
        if not needs_hub(encoder):
            return None
        if not hub_offline():
            check_hub_token()  # before any download; raises with the login command
        return HubAuthGate(
            recheck_interval_s=float(hpo.get("hub", {}).get("recheck_interval_s", 300))
        )

    def runner(
        self,
        study: optuna.Study,
        train: pd.DataFrame,
        validation: pd.DataFrame,
        fingerprint: dict[str, Any],
        tracking: StudyTracking,
        gate: HubAuthGate | None,
    ) -> StudyRunner:
        tags = {
            "study_id": self.config.study_id,
            "dataset_fingerprint": str(fingerprint.get("fingerprint")),
            "code_version": code_version(),
        }
        objective = TrainingObjective(
            train_df=train,
            validation_df=validation,
            base=self.base,
            policy=self.policy,
            checkpoint_options={
                k: v for k, v in self.checkpointing.items() if k not in ("policy", "overrides")
            },
            publisher=tracking.tracker,
            tags=tags,
        )
        hooks = StudyHooks(
            on_trial_end=lambda frozen, folder: self._trial_end(tracking, frozen, folder),
            on_progress=lambda progress: self._progress(tracking, progress),
            on_start=lambda: self._start(tracking, study),
        )
        info = {"session_run_id": tracking.session_run_id}
        return StudyRunner(
            study, self.config, self.space, self.base, objective, self.study_dir,
            self.coordination, hooks, gate, info,
        )  # fmt: skip

    @property
    def retention(self) -> StudyRetention:
        """Study retention under the study lock that holds across this study's workers."""
        return StudyRetention(self.study_dir, self.policy, self.metric, self.coordination.lock)

    def _start(self, tracking: StudyTracking, study: optuna.Study) -> None:
        tag_session_run(tracking)
        tracking.end_abandoned(self.coordination, self.study_dir)
        tracking.replay_orphan_buffers(self.coordination)
        finished = study.get_trials(deepcopy=False, states=FINISHED)
        self.retention.reconcile(TrialFolder.of(self.study_dir, t.number).path for t in finished)

    def _trial_end(self, tracking: StudyTracking, frozen: FrozenTrial, folder: TrialFolder) -> None:
        """Idempotent: run again by a worker that takes over a trial killed while finishing."""
        tracking.close_trial(frozen, folder)
        self.retention.trial_finished(folder.path)

    def _progress(self, tracking: StudyTracking, progress: Progress) -> None:
        tracking.progress(progress)
