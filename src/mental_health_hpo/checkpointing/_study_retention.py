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

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mental_health_hpo.checkpointing._commit import commit_records
from mental_health_hpo.checkpointing._errors import CheckpointError
from mental_health_hpo.checkpointing._manifest import Manifest, manifest_path, read_manifest
from mental_health_hpo.checkpointing._pressure import in_emergency, leave_emergency_if_relieved
from mental_health_hpo.checkpointing._retention import RetentionPolicy
from mental_health_hpo.checkpointing._study import (
    StudyRetentionReport,
    apply_study_retention,
    finish_trial,
    log_report,
)
from mental_health_hpo.ops.locations import Location, as_location
from mental_health_hpo.workspace.atomic import atomic_write_bytes
from mental_health_hpo.workspace.layout import CHECKPOINTS_DIRNAME, StudyLayout, TrialLayout
from mental_health_hpo.workspace.locks import StudyLock
from mental_health_hpo.workspace.storage import is_local, storage_at

logger = logging.getLogger(__name__)

INDEX_VERSION = 1


@dataclass
class _Ranked:
    """One finished trial in the index: its ranking value and whether it still holds weights."""

    best: float  # max metric over the manifest's checkpoints now; -inf when it holds none
    kept: bool  # the manifest holds checkpoints (a pruned trial holds none)
    seen: list[int]  # the manifest file as the index last saw it: inode, size, mtime (ns)

    def to_json(self) -> dict[str, Any]:
        best = None if self.best == float("-inf") else self.best
        return {"best": best, "kept": self.kept, "seen": self.seen}

    @classmethod
    def of(cls, directory: Path, manifest: Manifest, metric_name: str) -> _Ranked:
        best = max((r.metric(metric_name) for r in manifest.checkpoints), default=float("-inf"))
        return cls(best, bool(manifest.checkpoints), _seen(directory))


def _seen(directory: Path) -> list[int]:
    """What tells a rewritten manifest from the one the index saw, for one ``stat``: every
    write replaces the file (a new inode), so a changed manifest never matches."""
    try:
        stat = manifest_path(directory).stat()
    except FileNotFoundError:
        return []
    return [stat.st_ino, stat.st_size, stat.st_mtime_ns]


class _StaleIndexError(Exception):
    """A manifest the index names changed behind it (or is gone): rebuild from the manifests."""


class StudyRetention:
    """Finish trials and bound the study's disk use; safe to call again after any crash.

    The ranking of finished trials lives in ``retention_index.json`` in the study folder,
    written atomically under the retention lock, so a trial end reads and writes only the
    manifests whose retention changes (its own, and the trial it pushes out of the top
    ``keep_best_trials``), not every trial's: O(1) manifest reads per trial, not O(n).
    The index is a cache of what the manifests say, never a second truth: it is rebuilt from
    them (:func:`apply_study_retention`, a full scan) when it is missing, unreadable, for
    another metric, or names a manifest that changed since it last saw it. A crash between a
    manifest write and the index write leaves work that the next call repeats idempotently.

    A study in a bucket has no index and no disk pressure: the index's staleness check is a
    ``stat`` (a bucket has no inode), and the bucket's space is not this host's disk. There,
    each trial end ranks the finished trials from their manifests (a full scan, one small
    GET each) and the study lock must be one that holds across hosts.
    """

    def __init__(
        self,
        study_dir: str | Location,
        policy: RetentionPolicy,
        metric_name: str,
        lock: StudyLock,
    ) -> None:
        self.study = StudyLayout(Path(study_dir) if isinstance(study_dir, str) else study_dir)
        self.policy = policy
        self.metric_name = metric_name
        self.lock = lock
        self._on_disk = is_local(self.study.path)

    def trial_finished(self, trial_dir: str | Location) -> StudyRetentionReport:
        """A trial ended (completed, pruned or failed): finish it, then apply study retention."""
        return self.reconcile([trial_dir])

    def reconcile(self, finished_trial_dirs: Iterable[str | Location]) -> StudyRetentionReport:
        """Finish every listed trial not finished yet, then apply study retention once."""
        with self.lock.hold("retention"):
            trials = [
                TrialLayout(as_location(d) if isinstance(d, str) else d)
                for d in finished_trial_dirs
            ]
            if not self._on_disk:
                return self._rebuild(trials, self.policy.keep_best_trials)
            leave_emergency_if_relieved(self.study, self.policy.disk_space_threshold_percent)
            keep = 1 if in_emergency(self.study) else self.policy.keep_best_trials
            index = self._read_index()
            if index is not None:
                try:
                    return self._incremental(index, trials, keep)
                except _StaleIndexError as stale:
                    logger.info(
                        "retention index of %s is stale (%s): rebuilding", self.study.path, stale
                    )
            return self._rebuild(trials, keep)

    # ------------------------------------------------------------------ the index
    def _read_index(self) -> dict[str, _Ranked] | None:
        try:
            data = json.loads(self.study.retention_index.read_bytes())
            if data.get("version") != INDEX_VERSION or data.get("metric_name") != self.metric_name:
                return None
            return {
                name: _Ranked(
                    float("-inf") if e["best"] is None else float(e["best"]),
                    bool(e["kept"]),
                    [int(x) for x in e["seen"]],
                )
                for name, e in data["trials"].items()
            }
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning(
                "retention index %s is unreadable (%s): rebuilding", self.study.retention_index, exc
            )
            return None

    def _write_index(self, index: dict[str, _Ranked]) -> None:
        payload = {
            "version": INDEX_VERSION,
            "metric_name": self.metric_name,
            "trials": {name: entry.to_json() for name, entry in sorted(index.items())},
        }
        atomic_write_bytes(self.study.retention_index, json.dumps(payload).encode())

    def _incremental(
        self, index: dict[str, _Ranked], trials: list[TrialLayout], keep: int
    ) -> StudyRetentionReport:
        report = StudyRetentionReport()
        for trial in trials:
            name = trial.path.name
            if name in index:
                continue  # finished and ranked before (a repeat after a crash, or start-up)
            manifest = self._finish(trial)
            if manifest is not None:
                index[name] = _Ranked.of(
                    trial.folder / CHECKPOINTS_DIRNAME, manifest, self.metric_name
                )
        ranking = sorted(index.items(), key=lambda item: (-item[1].best, item[0]))
        for name, entry in ranking[:keep]:  # what decides who is pruned: one stat each
            if _seen(self.study.folder / name / CHECKPOINTS_DIRNAME) != entry.seen:
                raise _StaleIndexError(f"the manifest of {name} changed since the index saw it")
        for rank, (name, entry) in enumerate(ranking):
            if rank < keep:
                report.kept_trials.append(name)
            elif entry.kept:
                report.pruned_trials.append(name)
                report.bytes_freed += self._prune(name, entry)
        self._write_index(index)
        log_report(report, self.study.folder)
        return report

    def _prune(self, name: str, entry: _Ranked) -> int:
        directory = self.study.folder / name / CHECKPOINTS_DIRNAME
        try:
            manifest = read_manifest(directory)
        except CheckpointError as exc:
            raise _StaleIndexError(f"{directory}: {exc}") from exc
        if manifest is None or _seen(directory) != entry.seen:
            raise _StaleIndexError(f"the manifest of {name} changed since the index saw it")
        freed = commit_records(directory, manifest, [])
        entry.best, entry.kept, entry.seen = float("-inf"), False, _seen(directory)
        return freed

    def _rebuild(self, trials: list[TrialLayout], keep: int) -> StudyRetentionReport:
        """The full scan: finish the listed trials, rank every finished trial, index them."""
        for trial in trials:
            self._finish(trial)
        report = apply_study_retention(self.study.path, keep, self.metric_name)
        if not self._on_disk:
            return report
        index: dict[str, _Ranked] = {}
        for directory in self.study.checkpoint_dirs():
            manifest = _read_or_none(directory)
            if manifest is not None and manifest.finished:
                index[directory.parent.name] = _Ranked.of(directory, manifest, self.metric_name)
        self._write_index(index)
        return report

    def _finish(self, trial: TrialLayout) -> Manifest | None:
        """Finish one trial (idempotent); its manifest after, None when it has none."""
        manifest = _read_or_none(trial.checkpoints)
        if manifest is None or manifest.finished:
            return manifest
        finish_trial(trial.checkpoints, self.metric_name)
        return _read_or_none(trial.checkpoints)


def _read_or_none(directory: Location) -> Manifest | None:
    try:
        return read_manifest(storage_at(directory))
    except CheckpointError as exc:
        logger.warning("trial folder %s is left as it is: %s", directory.parent, exc)
        return None
