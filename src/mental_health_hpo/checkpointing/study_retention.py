"""The one service that bounds a study's disk: it runs when a trial ends, under the study lock.

A trial's own checkpoint manager only ever touches its own folder. Across trials, this service
finishes a trial (drops its resume state, keeps its best weights) and keeps the best weights of
the top ``keep_best_trials`` finished trials only, so disk use stays bounded however many trials
run. Both steps are idempotent, so a crash at any point is mended by calling it again
(:meth:`StudyRetention.reconcile` at start-up does that for every finished trial).

Whatever changes several trials' folders holds the study lock. The default is a file lock in
the study folder, which serialises workers on one host; workers on several hosts pass a lock
that lives in the study database (see ``mental_health_hpo.hpo.locks``), because ``flock`` is
not reliable on NFS.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from mental_health_hpo.checkpointing.atomic import make_dir_durable
from mental_health_hpo.checkpointing.errors import CheckpointError
from mental_health_hpo.checkpointing.layout import StudyLayout, TrialLayout
from mental_health_hpo.checkpointing.manifest import read_manifest
from mental_health_hpo.checkpointing.policy import RetentionPolicy
from mental_health_hpo.checkpointing.pressure import in_emergency, leave_emergency_if_relieved
from mental_health_hpo.checkpointing.study import (
    StudyRetentionReport,
    apply_study_retention,
    finish_trial,
)

logger = logging.getLogger(__name__)


class StudyLock(Protocol):
    """Mutual exclusion for study-wide steps (retention, publishing, the final outputs)."""

    def hold(self, purpose: str) -> AbstractContextManager[None]: ...


class FileStudyLock:
    """``flock`` on ``<study>/.locks/<purpose>.lock``: workers on one host, not across hosts."""

    def __init__(self, study_dir: Path) -> None:
        self.directory = Path(study_dir) / ".locks"

    @contextlib.contextmanager
    def hold(self, purpose: str) -> Iterator[None]:
        make_dir_durable(self.directory)
        with (self.directory / f"{purpose}.lock").open("a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class StudyRetention:
    """Finish trials and bound the study's disk use; safe to call again after any crash."""

    def __init__(
        self,
        study_dir: str | Path,
        policy: RetentionPolicy,
        metric_name: str,
        lock: StudyLock | None = None,
    ) -> None:
        self.study = StudyLayout(Path(study_dir))
        self.policy = policy
        self.metric_name = metric_name
        self.lock: StudyLock = lock or FileStudyLock(self.study.path)

    def trial_finished(self, trial_dir: str | Path) -> StudyRetentionReport:
        """A trial ended (completed, pruned or failed): finish it, then apply study retention."""
        return self.reconcile([trial_dir])

    def reconcile(self, finished_trial_dirs: Iterable[str | Path]) -> StudyRetentionReport:
        """Finish every listed trial not finished yet, then apply study retention once."""
        with self.lock.hold("retention"):
            for trial_dir in finished_trial_dirs:
                self._finish(TrialLayout(Path(trial_dir)))
            leave_emergency_if_relieved(self.study, self.policy.disk_space_threshold_percent)
            keep = 1 if in_emergency(self.study) else self.policy.keep_best_trials
            return apply_study_retention(self.study.path, keep, self.metric_name)

    def _finish(self, trial: TrialLayout) -> None:
        try:
            manifest = read_manifest(trial.checkpoints)
        except CheckpointError as exc:
            logger.warning("trial %s is left as it is: %s", trial.trial_id, exc)
            return
        if manifest is not None and not manifest.finished:
            finish_trial(trial.checkpoints, self.metric_name)
