"""What a Ctrl-C leaves behind: the message the CLI prints instead of click's bare ``Aborted!``.

Everything a run commits survives an interrupt (checkpoints are atomic, trial records are written
per state change), so the message reads what is on disk: for each study touched by the run, how
many trials finished, and for each unfinished one the checkpoint its next run resumes from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mental_health_hpo.checkpointing import CheckpointError, read_manifest
from mental_health_hpo.workspace.layout import StudyLayout, TrialLayout, study_dirs

FINISHED_STATES = ("completed", "pruned", "failed")


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
        record = json.loads(trial.record.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        record = {}
    try:
        manifest = read_manifest(trial.checkpoints)
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
    root = Path(experiments_dir)
    studies = [p for p in study_dirs(root) if _touched_since(p, since)]
    lines = ["Interrupted. Everything committed before the interrupt is kept."]
    for study in studies:
        trials = [_trial(trial.path) for trial in StudyLayout(study).trials()]
        finished = sum(t.state in FINISHED_STATES for t in trials)
        lines.append(f"{study}: {finished} of {len(trials)} started trials finished")
        lines += [f"  {t.line()}" for t in trials if t.state not in FINISHED_STATES]
    if not studies:
        lines.append("No study was written by this run.")
    lines.append(f"To continue, run the same command again: {command}")
    if studies:
        lines.append("(the same study name continues the same study; no metric is logged twice)")
    return "\n".join(lines)
