"""Study-level retention and read-only lookup of the best checkpoints across trial folders.

Layout: ``<study_dir>/trial_<id>/checkpoints/manifest.json``. Once a trial is finished its
resume state can go; only the top ``keep_best_trials`` finished trials keep their best weights,
so disk use stays bounded however many trials run. Running trials are never touched here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mental_health_hpo.checkpointing._commit import commit_records
from mental_health_hpo.checkpointing._errors import CheckpointError
from mental_health_hpo.checkpointing._manifest import (
    KIND_WEIGHTS,
    CheckpointRecord,
    Manifest,
    read_manifest,
)
from mental_health_hpo.checkpointing._retention import best_records
from mental_health_hpo.ops.locations import Location, ObjectStoreUrl, as_location
from mental_health_hpo.workspace.layout import CHECKPOINTS_DIRNAME, STATE_FILE
from mental_health_hpo.workspace.layout import checkpoints_dir_of as checkpoints_dir_of
from mental_health_hpo.workspace.storage import (
    committed_checkpoint_dirs,
    has_manifest,
    storage_at,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckpointRef:
    """Where one committed checkpoint lives (a folder, or a bucket prefix), and its value."""

    trial_dir: Location
    checkpoints_dir: Location
    record: CheckpointRecord
    metric_name: str
    value: float

    @property
    def path(self) -> Location:
        return self.checkpoints_dir / self.record.id

    @classmethod
    def ranked(cls, path: str | Location, metric_name: str | None = None) -> list[CheckpointRef]:
        """Every committed checkpoint under a study, trial or checkpoints folder, best first."""
        return ranked_checkpoints(path, metric_name)

    @classmethod
    def best(cls, path: str | Location, metric_name: str | None = None) -> list[CheckpointRef]:
        """The best checkpoint(s) under a study, trial or checkpoints folder: each trial's best
        by the one rule (:func:`best_of_trial`), and of co-best trials every one, best trial
        folder first. Read-only: load one with ``load_checkpoint_ref``."""
        return find_best_checkpoints(path, metric_name)


@dataclass
class StudyRetentionReport:
    """What study-level retention did (or would do, in a dry run)."""

    kept_trials: list[str] = field(default_factory=list)
    pruned_trials: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    dry_run: bool = False


def trial_checkpoint_dirs(study_dir: Location) -> list[Location]:
    """Checkpoints folders of every trial of a study that committed a manifest."""
    return committed_checkpoint_dirs(study_dir)


def _location(path: str | Location) -> Location:
    return as_location(path) if isinstance(path, str) else path


def _safe_read(directory: Location) -> Manifest | None:
    try:
        return read_manifest(storage_at(directory))
    except CheckpointError as exc:
        logger.warning("skipping %s: %s", directory, exc)
        return None


def _refs(directory: Location, manifest: Manifest, metric_name: str | None) -> list[CheckpointRef]:
    name = metric_name or manifest.metric_name
    return [
        CheckpointRef(directory.parent, directory, r, name, r.metric(name))
        for r in manifest.checkpoints
    ]


def _readable_manifests(path: Location) -> Iterator[tuple[Location, Manifest]]:
    """(checkpoints folder, manifest) of a checkpoints, trial or study folder; unreadable ones
    are skipped (read-only queries never fail on a torn trial)."""
    if has_manifest(path):
        dirs = [path]
    elif has_manifest(path / CHECKPOINTS_DIRNAME):
        dirs = [path / CHECKPOINTS_DIRNAME]
    else:
        dirs = trial_checkpoint_dirs(path)
    for directory in dirs:
        manifest = _safe_read(directory)
        if manifest is not None:
            yield directory, manifest


def ranked_checkpoints(path: str | Location, metric_name: str | None = None) -> list[CheckpointRef]:
    """Every committed checkpoint under a study, trial or checkpoints folder, best first."""
    refs: list[CheckpointRef] = []
    for directory, manifest in _readable_manifests(_location(path)):
        refs.extend(_refs(directory, manifest, metric_name))
    return sorted(refs, key=lambda r: (-r.value, str(r.trial_dir), r.record.step))


def find_best_checkpoints(
    path: str | Location, metric_name: str | None = None
) -> list[CheckpointRef]:
    """The best checkpoint(s) under a study, trial or checkpoints folder, by :func:`best_of_trial`.

    Each trial contributes what the one rule calls its best; across trials, every trial
    sharing the top value contributes (co-best trials), best trial folder first. Read-only:
    nothing is written or verified here; load with ``load_checkpoint_ref``.
    """
    refs: list[CheckpointRef] = []
    for directory, manifest in _readable_manifests(_location(path)):
        name = metric_name or manifest.metric_name
        best = {r.id for r in best_of_trial(manifest, name)}
        refs.extend(r for r in _refs(directory, manifest, name) if r.record.id in best)
    if not refs:
        return []
    top = max(r.value for r in refs)
    return sorted(
        (r for r in refs if r.value == top),
        key=lambda r: (str(r.trial_dir), r.record.epoch, r.record.step, r.record.id),
    )


def metric_never_moved(manifest: Manifest, metric_name: str) -> bool:
    """True when every journaled epoch of a trial has the same value (a model stuck at 0.0)."""
    values = {h.metrics.get(metric_name) for h in manifest.history}
    return len(manifest.history) > 1 and len(values) == 1


def best_of_trial(manifest: Manifest, metric_name: str) -> list[CheckpointRecord]:
    """THE rule for a trial's best checkpoints, oldest first; every caller uses this one.

    The study result, publication, evaluation and finishing a trial all ask this function,
    so what the result names is exactly what finishing keeps. The rule, on what the manifest
    holds now:

    - the committed checkpoints with the highest metric value (NaN or absent: never best);
    - co-best ties are all kept (two models that score the same may still differ), except
    - when the metric never moved over the whole journal (every epoch the same value, a
      model stuck at 0.0): then only the newest of them, as one copy says all there is.

    Idempotent: applied to what it kept (a finished trial's manifest), it returns the same.
    """
    best = best_records(list(manifest.checkpoints), metric_name)
    if best and metric_never_moved(manifest, metric_name):
        best = best[-1:]
    return best


def _best_only(manifest: Manifest, metric_name: str) -> list[CheckpointRecord]:
    """The records a finished trial keeps: :func:`best_of_trial`, weights only."""
    result = []
    for record in best_of_trial(manifest, metric_name):
        files = {k: v for k, v in record.files.items() if k != STATE_FILE}
        result.append(CheckpointRecord(**{**record.__dict__, "files": files, "kind": KIND_WEIGHTS}))
    return result


def finish_trial(checkpoints_dir: Location, metric_name: str | None = None) -> int:
    """Mark a trial finished: drop its resume state, keep only best/co-best weights."""
    storage = storage_at(checkpoints_dir)
    manifest = read_manifest(storage)
    if manifest is None:
        return 0
    name = metric_name or manifest.metric_name
    records = _best_only(manifest, name)
    if manifest.finished and records == manifest.checkpoints:
        return 0  # finished before: nothing to rewrite
    manifest.finished = True
    return commit_records(storage, manifest, records)


def apply_study_retention(
    study_dir: str | Location,
    keep_best_trials: int,
    metric_name: str | None = None,
    *,
    exclude: Iterable[str | Path] = (),
    dry_run: bool = False,
) -> StudyRetentionReport:
    """Keep best weights of the top ``keep_best_trials`` finished trials; prune the rest.

    Ranking is by each trial's best metric value, ties broken by folder name, so exactly
    ``keep_best_trials`` trials keep weights (bounded disk). Metrics history stays in every
    manifest. Unfinished (running) trials and ``exclude`` folders are left alone.
    """
    if keep_best_trials < 1:
        raise ValueError(f"keep_best_trials must be >= 1, got {keep_best_trials}")
    excluded = {_identity(p) for p in exclude}
    report = StudyRetentionReport(dry_run=dry_run)
    finished: list[tuple[float, str, Location, Manifest]] = []
    study = _location(study_dir)
    for directory in trial_checkpoint_dirs(study):
        if _identity(directory) in excluded or _identity(directory.parent) in excluded:
            continue
        manifest = _safe_read(directory)
        if manifest is None or not manifest.finished:
            continue
        name = metric_name or manifest.metric_name
        best = max((r.metric(name) for r in manifest.checkpoints), default=float("-inf"))
        finished.append((best, directory.parent.name, directory, manifest))
    finished.sort(key=lambda item: (-item[0], item[1]))
    for rank, (_best, trial, directory, manifest) in enumerate(finished):
        name = metric_name or manifest.metric_name
        if rank < keep_best_trials:
            report.kept_trials.append(trial)
            records = _best_only(manifest, name)
        else:
            report.pruned_trials.append(trial)
            records = []
        kept_bytes = sum(r.size for r in records)
        if dry_run:
            report.bytes_freed += manifest.total_size - kept_bytes
        elif records != manifest.checkpoints:
            report.bytes_freed += commit_records(storage_at(directory), manifest, records)
    log_report(report, study)
    return report


def _identity(location: str | Location) -> str:
    """What tells two names of one folder apart from two folders (a bucket key has one name)."""
    found = _location(location)
    return str(found) if isinstance(found, ObjectStoreUrl) else str(found.resolve())


def log_report(report: StudyRetentionReport, study_dir: Location) -> None:
    """Counts and bytes at INFO (a line of constant size however many trials), names at DEBUG."""
    if not report.pruned_trials:
        return
    logger.info(
        "study retention: %d trial(s) pruned, %.1f MB freed, %d keep weights%s",
        len(report.pruned_trials),
        report.bytes_freed / 1e6,
        len(report.kept_trials),
        " (dry run)" if report.dry_run else "",
    )
    logger.debug(
        "study retention in %s: pruned %s, kept %s",
        study_dir,
        report.pruned_trials,
        report.kept_trials,
    )
