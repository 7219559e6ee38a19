"""Which study, which trial, which checkpoint(s): the read-only selection step of evaluate.

Selection only reads what ``hpo`` left on disk (``trial.json`` and each trial's checkpoint
manifest), so evaluate can run in its own session, on another day, and pick the same checkpoint.

Rules:

- Study: ``study_name`` when given (``experiments/study_<name>``), else the study named in
  ``hpo_best_trial`` (the latest run of ``hpo``), else the most recently modified study folder.
- Trial: the ``completed`` trial with the highest ``best_value`` in its ``trial.json``; ties go to
  the lowest trial number, so the choice never depends on folder listing order.
- Checkpoints: that trial's best checkpoints by the one rule that finishing a trial and the study
  result use too (``checkpointing.best_of_trial``: co-best ties, but the newest only when the
  metric never moved), ordered by epoch then step. All of them are evaluated (tied checkpoints are
  equally "best", so reporting one would be an arbitrary pick); the first is the "primary" one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mental_health_hpo.checkpointing import CheckpointRef
from mental_health_hpo.ops.locations import Location, local_folder
from mental_health_hpo.workspace import storage_at
from mental_health_hpo.workspace.layout import (
    TRIAL_RECORD_NAME,
    StudyLayout,
    TrialLayout,
    study_dirs,
    trial_number,
)

COMPLETED = "completed"


class SelectionError(RuntimeError):
    """No study, no completed trial or no committed checkpoint to evaluate."""


@dataclass(frozen=True)
class TrialSelection:
    """The best trial of a study, read from its ``trial.json``."""

    study_dir: Location
    trial_dir: Location
    trial_id: str
    number: int
    best_value: float
    record: dict[str, Any]

    @property
    def study_id(self) -> str:
        return study_id_of(self.study_dir)


@dataclass(frozen=True)
class Selection:
    """What evaluate evaluates: a trial, its metric and its best / co-best checkpoints."""

    trial: TrialSelection
    metric_name: str
    checkpoints: list[CheckpointRef]

    @property
    def primary(self) -> CheckpointRef:
        """The checkpoint whose metrics are the report's ``test_metrics`` (first by epoch)."""
        return self.checkpoints[0]


def study_id_of(study_dir: Location) -> str:
    """``experiments/study_<id>`` -> ``<id>`` (a folder or a bucket prefix)."""
    return StudyLayout(study_dir).study_id


def find_study_dir(
    experiments_dir: str | Path,
    study_name: str | None = None,
    hpo_best_trial: Mapping[str, Any] | None = None,
) -> Path:
    """The folder of the study to evaluate (see the module docstring for the order)."""
    root = local_folder(experiments_dir, "evaluate.experiments_dir")
    if study_name:
        candidate = StudyLayout.of(root, study_name).folder
        if not candidate.is_dir():
            raise SelectionError(f"study '{study_name}' not found: {candidate} is no folder")
        return candidate
    if hpo_best_trial:
        named = hpo_best_trial.get("study_dir")
        if named and Path(str(named)).is_dir():
            return Path(str(named))
        study_id = hpo_best_trial.get("study_id")
        if study_id and StudyLayout.of(root, str(study_id)).folder.is_dir():
            return StudyLayout.of(root, str(study_id)).folder
    studies = study_dirs(root)
    if not studies:
        raise SelectionError(f"no study folder under {root}; run `kedro run --pipeline hpo` first")
    return max(studies, key=lambda p: (p.stat().st_mtime, p.name))


def read_trial(trial_dir: Location) -> dict[str, Any]:
    """A trial's ``trial.json``; empty when missing or unreadable (the trial never prepared)."""
    try:
        return dict(json.loads(storage_at(trial_dir).read(TRIAL_RECORD_NAME).decode("utf-8")))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return {}


def trial_records(study_dir: Location) -> list[tuple[Location, dict[str, Any]]]:
    """Every trial folder of a study with its record, in trial-number order (a folder or a
    bucket prefix)."""
    trials = [e.name for e in storage_at(study_dir).list("") if e.is_prefix]
    folders = [study_dir / name for name in trials if trial_number(name) is not None]
    return [(folder, read_trial(folder)) for folder in folders]


def _number(folder: Location, record: Mapping[str, Any]) -> int:
    if "number" in record:
        return int(record["number"])
    number = TrialLayout(folder).number
    if number is None:
        raise SelectionError(f"{folder} is no trial folder (trial_<number>)")
    return number


def _value(record: Mapping[str, Any]) -> float:
    value = record.get("best_value")
    if value is None:
        return -math.inf
    number = float(value)
    return -math.inf if math.isnan(number) else number


def select_best_trial(study_dir: str | Path) -> TrialSelection:
    """The completed trial with the highest ``best_value``; ties go to the lowest number."""
    study_dir = Path(study_dir)
    candidates = [
        (folder, record)
        for folder, record in trial_records(study_dir)
        if record.get("state") == COMPLETED and _value(record) > -math.inf
    ]
    if not candidates:
        raise SelectionError(f"no completed trial with a best_value in {study_dir}")
    folder, record = min(candidates, key=lambda item: (-_value(item[1]), _number(*item)))
    return TrialSelection(
        study_dir=study_dir,
        trial_dir=folder,
        trial_id=TrialLayout(folder).trial_id,
        number=_number(folder, record),
        best_value=_value(record),
        record=record,
    )


def best_checkpoints(
    trial_dir: str | Location, metric_name: str | None = None
) -> list[CheckpointRef]:
    """Best and co-best checkpoints of one trial, first by epoch (then step)."""
    refs = CheckpointRef.best(trial_dir, metric_name)
    if not refs:
        raise SelectionError(f"no committed checkpoint with a metric value in {trial_dir}")
    return sorted(refs, key=lambda r: (r.record.epoch, r.record.step, r.record.id))


def checkpoint_by_id(
    trial_dir: str | Path, checkpoint_id: str, metric_name: str | None = None
) -> CheckpointRef:
    """One named checkpoint of a trial (the CLI's ``--checkpoint``)."""

    for ref in CheckpointRef.ranked(trial_dir, metric_name):
        if ref.record.id == checkpoint_id or ref.path == Path(checkpoint_id):
            return ref
    raise SelectionError(f"no committed checkpoint '{checkpoint_id}' in {trial_dir}")


def metric_name_of(
    trial: TrialSelection, hpo_best_trial: Mapping[str, Any] | None = None
) -> str | None:
    """The study's optimization metric: trial config first, then ``hpo_best_trial``."""
    trainer = dict(trial.record.get("config", {}).get("trainer", {}) or {})
    if trainer.get("optimization_metric"):
        return str(trainer["optimization_metric"])
    if hpo_best_trial and hpo_best_trial.get("optimization_metric"):
        return str(hpo_best_trial["optimization_metric"])
    return None


def select(
    experiments_dir: str | Path,
    study_name: str | None = None,
    hpo_best_trial: Mapping[str, Any] | None = None,
) -> Selection:
    """Study -> best trial -> its best / co-best checkpoints, in one call."""
    study_dir = find_study_dir(experiments_dir, study_name, hpo_best_trial)
    trial = select_best_trial(study_dir)
    metric = metric_name_of(trial, hpo_best_trial)
    refs = best_checkpoints(trial.trial_dir, metric)
    return Selection(trial=trial, metric_name=metric or refs[0].metric_name, checkpoints=refs)
