"""What a Ctrl-C leaves behind: the message the CLI prints instead of click's bare ``Aborted!``.

Everything a run commits survives an interrupt (checkpoints are atomic, trial records are written
per state change), so the message reads what is on disk: for each study touched by the run, how
many trials finished, and for each unfinished one the checkpoint its next run resumes from.

It reads the experiments folder the run was configured with (``hpo.study.experiments_dir``: a
deployment's shared folder, say), which the hpo node hands to :func:`remember_experiments_dir`
before it writes anything; reading the default ``experiments/`` instead told a deployment's
user that no study was written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mental_health_hpo.checkpointing import CheckpointError, read_manifest
from mental_health_hpo.ops.locations import ObjectStoreUrl, UnsupportedLocationError, parse_location
from mental_health_hpo.workspace.layout import (
    CHECKPOINTS_DIRNAME,
    TRIAL_RECORD_NAME,
    StudyLayout,
    TrialLayout,
    study_dirs,
)

FINISHED_STATES = ("completed", "pruned", "failed")

#: The experiments folder (or bucket URL) this process's run was configured with; empty until
#: the hpo node starts (a run stopped before that wrote no study, and reads the default).
_configured_experiments_dir: list[str | Path] = []


def remember_experiments_dir(value: str | Path | None) -> None:
    """Record the run's ``hpo.study.experiments_dir`` for the message of an interrupt."""
    _configured_experiments_dir[:] = [value] if value else []


def configured_experiments_dir(default: str | Path) -> str | Path:
    """The run's experiments folder or bucket URL, or ``default`` when none was recorded."""
    return _configured_experiments_dir[0] if _configured_experiments_dir else default


@dataclass(frozen=True)
class TrialOnDisk:
    """One trial folder as a resume sees it."""

    name: str
    state: str
    resume_from: str | None  # the last committed checkpoint, None: restarts from epoch 0

    def line(self) -> str:
        if self.state in FINISHED_STATES:
            return f"{self.name}: {self.state}"
        if self.resume_from is None:
            return f"{self.name}: {self.state}, no committed checkpoint yet (restarts at epoch 0)"
        return f"{self.name}: {self.state}, resumes from checkpoint {self.resume_from}"


def _trial(folder: Path) -> TrialOnDisk:
    trial = TrialLayout(folder)
    try:
        record = json.loads((folder / TRIAL_RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        record = {}
    try:
        manifest = read_manifest(folder / CHECKPOINTS_DIRNAME)
    except CheckpointError:  # the next run reports it; here only say nothing resumes from it
        manifest = None
    latest = None
    if manifest is not None and manifest.checkpoints:
        newest = max(manifest.checkpoints, key=lambda r: (r.epoch, r.step))
        latest = str(trial.checkpoints / newest.id)
    return TrialOnDisk(trial.trial_id, str(record.get("state", "queued")), latest)


def _touched_since(study_dir: Path, since: float) -> bool:
    return any(path.stat().st_mtime >= since for path in study_dir.rglob("*") if path.is_file())


def interrupted_summary(experiments_dir: str | Path, since: float, command: str) -> str:
    """The lines to print after an interrupt of ``command``, started at time ``since``."""
    lines = ["Interrupted. Everything committed before the interrupt is kept."]
    try:
        location = parse_location(experiments_dir, "hpo.study.experiments_dir")
    except UnsupportedLocationError:
        location = Path(experiments_dir)
    if isinstance(location, ObjectStoreUrl):  # no local folder to read: say where it is
        lines.append(f"The study is in {experiments_dir}: what reached the bucket is kept there.")
        lines.append(f"To continue, run the same command again: {command}")
        return "\n".join(lines)
    studies = [p for p in study_dirs(location) if _touched_since(p, since)]
    for study in studies:
        trials = [_trial(trial.folder) for trial in StudyLayout(study).trials()]
        finished = sum(t.state in FINISHED_STATES for t in trials)
        lines.append(f"{study}: {finished} of {len(trials)} started trials finished")
        lines += [f"  {t.line()}" for t in trials if t.state not in FINISHED_STATES]
    if not studies:
        lines.append(f"No study was written to {location} by this run.")
    lines.append(f"To continue, run the same command again: {command}")
    if studies:
        lines.append("(the same study name continues the same study; no metric is logged twice)")
    return "\n".join(lines)
