"""Where everything of a study lives on disk, and how its ids are spelled.

This is the only module that knows folder names and id formats; everything else asks it. A study
is ``<experiments_dir>/study_<id>/``; each trial is ``trial_<nnnn>/`` in it, holding
``checkpoints/`` (``manifest.json`` plus one folder per checkpoint), ``logs/`` and ``trial.json``.
The experiments folder may be shared by every worker of a study (NFS, a ReadWriteMany volume):
nothing here depends on the host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

STUDY_PREFIX = "study_"
TRIAL_PREFIX = "trial_"
CHECKPOINTS_DIRNAME = "checkpoints"
LOGS_DIRNAME = "logs"
TRIAL_RECORD_NAME = "trial.json"
MANIFEST_NAME = "manifest.json"
PREVIOUS_MANIFEST_NAME = "manifest.prev.json"
RECORD_NAME = "record.json"  # each checkpoint folder's own copy of its manifest record
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "training_state.pt"
QUARANTINE_DIRNAME = ".quarantine"
PRESSURE_MARKER_NAME = "retention_pressure.json"
TEMP_PREFIX = ".tmp-"

_TRIAL_RE = re.compile(rf"^{TRIAL_PREFIX}(\d+)$")


def checkpoint_id(epoch: int, step: int) -> str:
    """Folder name of a checkpoint; sortable and unique per (epoch, step)."""
    return f"ckpt-e{epoch:04d}-s{step:06d}"


def trial_id(number: int) -> str:
    """Folder name of a trial: ``trial_0007``."""
    return f"{TRIAL_PREFIX}{number:04d}"


def trial_number(name: str) -> int | None:
    """The trial number a folder name spells, None for anything else."""
    match = _TRIAL_RE.match(name)
    return int(match.group(1)) if match else None


def is_study_dir(path: Path) -> bool:
    return path.name.startswith(STUDY_PREFIX)


def is_temp_name(name: str) -> bool:
    """True for names of atomic writes that were never renamed into place."""
    return name.startswith(TEMP_PREFIX)


@dataclass(frozen=True)
class TrialLayout:
    """The paths of one trial."""

    path: Path

    @property
    def number(self) -> int | None:
        return trial_number(self.path.name)

    @property
    def trial_id(self) -> str:
        return self.path.name

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS_DIRNAME

    @property
    def logs(self) -> Path:
        return self.path / LOGS_DIRNAME

    @property
    def record(self) -> Path:
        return self.path / TRIAL_RECORD_NAME

    @property
    def manifest(self) -> Path:
        return self.checkpoints / MANIFEST_NAME


@dataclass(frozen=True)
class StudyLayout:
    """The paths of one study."""

    path: Path

    @classmethod
    def of(cls, experiments_dir: str | Path, study_id: str) -> StudyLayout:
        return cls(Path(experiments_dir) / f"{STUDY_PREFIX}{study_id}")

    @property
    def study_id(self) -> str:
        return self.path.name.removeprefix(STUDY_PREFIX)

    @property
    def experiments_dir(self) -> Path:
        return self.path.parent

    @property
    def pressure_marker(self) -> Path:
        return self.path / PRESSURE_MARKER_NAME

    @property
    def logs(self) -> Path:
        return self.path / LOGS_DIRNAME

    def trial(self, number: int) -> TrialLayout:
        return TrialLayout(self.path / trial_id(number))

    def trials(self) -> list[TrialLayout]:
        """Every trial folder of the study (``trial_*``), by name."""
        if not self.path.is_dir():
            return []
        found = (p for p in self.path.iterdir() if p.is_dir() and p.name.startswith(TRIAL_PREFIX))
        return [TrialLayout(p) for p in sorted(found)]

    def checkpoint_dirs(self) -> list[Path]:
        """Checkpoints folders of every trial that has committed a manifest."""
        return [t.checkpoints for t in self.trials() if t.manifest.exists()]


def checkpoints_dir_of(path: Path) -> Path:
    """``<trial>/checkpoints`` for a trial folder; the folder itself if it holds a manifest."""
    return path if (path / MANIFEST_NAME).exists() else path / CHECKPOINTS_DIRNAME


def study_of(checkpoints_dir: Path) -> StudyLayout | None:
    """The study a trial's checkpoints folder belongs to, None for a folder outside any study."""
    trial = checkpoints_dir.parent
    return StudyLayout(trial.parent) if is_study_dir(trial.parent) else None
