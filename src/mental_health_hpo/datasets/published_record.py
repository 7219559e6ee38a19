"""The record that travels with a published best checkpoint: which trial, how to rebuild it.

Why: evaluate runs in its own session and must not re-derive the study's best trial from
``experiments/`` behind the catalog's back. hpo's publish writes this record beside the published
checkpoints; loading ``best_checkpoint`` reads it (a small JSON file) and nothing else, so
evaluate gets the trial, its model config, the metric and the co-best ids through the catalog,
and verifies and loads each checkpoint's weights once, when it evaluates it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mental_health_hpo.checkpointing import CheckpointRef, find_best_checkpoints, storage_at
from mental_health_hpo.checkpointing.layout import (
    PUBLISHED_RECORD_NAME,
    TRIAL_RECORD_NAME,
    StudyLayout,
    TrialLayout,
)
from mental_health_hpo.ops.locations import Location

RECORD_NAME = PUBLISHED_RECORD_NAME


@dataclass(frozen=True)
class PublishedRecord:
    """The published best trial: identity, model config, metric and co-best checkpoint ids."""

    study_id: str
    study_dir: str
    trial_id: str
    trial_number: int
    trial_dir: str
    metric_name: str
    value: float
    checkpoint_ids: list[str]
    trial_record: dict[str, Any] = field(default_factory=dict)  # the trial's trial.json

    @property
    def model_config(self) -> dict[str, Any]:
        """``trial.json["config"]["model"]``: what rebuilds the network."""
        return dict(self.trial_record.get("config", {}).get("model", {}) or {})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def to_bytes(self) -> bytes:
        """The ``published.json`` payload."""
        return json.dumps(self.to_json(), indent=1, default=str).encode()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PublishedRecord:
        return cls(
            study_id=str(data["study_id"]),
            study_dir=str(data["study_dir"]),
            trial_id=str(data["trial_id"]),
            trial_number=int(data["trial_number"]),
            trial_dir=str(data["trial_dir"]),
            metric_name=str(data["metric_name"]),
            value=float(data["value"]),
            checkpoint_ids=[str(i) for i in data["checkpoint_ids"]],
            trial_record=dict(data.get("trial_record") or {}),
        )


def read_trial_record(trial_dir: Location) -> dict[str, Any]:
    """A trial's ``trial.json`` (in a folder or a bucket); empty when missing or unreadable."""
    try:
        return dict(json.loads(storage_at(trial_dir).read(TRIAL_RECORD_NAME).decode("utf-8")))
    except (OSError, json.JSONDecodeError):
        return {}


def _number(trial_dir: Location, record: Mapping[str, Any]) -> int:
    if "number" in record:
        return int(record["number"])
    number = TrialLayout(trial_dir).number
    return -1 if number is None else number


def record_of(trial_dir: Location, refs: list[CheckpointRef]) -> PublishedRecord:
    """The record of ``refs`` (best and co-best checkpoints of one trial) and their trial."""
    trial = TrialLayout(trial_dir)
    trial_record = read_trial_record(trial_dir)
    study = StudyLayout(trial_dir.parent)
    return PublishedRecord(
        study_id=study.study_id,
        study_dir=str(study.path),
        trial_id=trial.trial_id,
        trial_number=_number(trial_dir, trial_record),
        trial_dir=str(trial_dir),
        metric_name=refs[0].metric_name,
        value=refs[0].value,
        checkpoint_ids=[r.record.id for r in refs],
        trial_record=trial_record,
    )


def read_record(folder: Location) -> PublishedRecord | None:
    """The record of a published folder; None when there is none (not a published folder)."""
    try:
        data = json.loads(storage_at(folder).read(PUBLISHED_RECORD_NAME).decode("utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    return PublishedRecord.from_json(data)


def best_of_folder(path: Location, metric_name: str | None) -> PublishedRecord | None:
    """The record of the best trial under a study or trial folder (``evaluate.study_name``).

    :func:`find_best_checkpoints` (the one rule) decides; of co-best trials, the first folder.
    """
    refs = find_best_checkpoints(path, metric_name)
    if not refs:
        return None
    best_trial = refs[0].trial_dir
    return record_of(best_trial, [r for r in refs if r.trial_dir == best_trial])
