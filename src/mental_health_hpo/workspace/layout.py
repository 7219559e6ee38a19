"""Where everything of a study lives on disk, and how its ids are spelled.

This is the only module that knows folder names and id formats; everything else asks it. A study
is ``<experiments_dir>/study_<id>/``; each trial is ``trial_<nnnn>/`` in it, holding
``checkpoints/`` (``manifest.json`` plus one folder per checkpoint), ``logs/`` and ``trial.json``.
The experiments folder may be shared by every worker of a study (NFS, a ReadWriteMany volume):
nothing here depends on the host. A published hand-off folder (``data/06_models/best_checkpoint``,
see :class:`PublishedLayout`) holds ``checkpoints/`` and ``published.json``.
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
WORK_LOG_NAME = "work.jsonl"  # in the trial's logs/: which process trained which epoch
STUDY_RESULT_NAME = "study_result.json"
MLFLOW_BUFFERS_DIRNAME = "mlflow_buffers"  # one metrics outage buffer per worker
MLFLOW_PENDING_NAME = "mlflow_pending_runs.json"  # beside the buffers: runs not created yet
MANIFEST_NAME = "manifest.json"
PREVIOUS_MANIFEST_NAME = "manifest.prev.json"
LOCKS_DIRNAME = ".locks"  # in the study folder: one file lock per purpose (one host)
RECORD_NAME = "record.json"  # each checkpoint folder's own copy of its manifest record
PUBLISHED_RECORD_NAME = "published.json"  # the trial record beside published checkpoints
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "training_state.pt"
QUARANTINE_DIRNAME = ".quarantine"
PRESSURE_MARKER_NAME = "retention_pressure.json"
RETENTION_INDEX_NAME = "retention_index.json"  # the ranking of finished trials (a cache)
TEMP_PREFIX = ".tmp-"
#: ``.best_checkpoint.tmp-<pid>`` (being built) and ``.best_checkpoint.old-<pid>`` (being
#: replaced): the siblings a publication makes beside its target folder.
PUBLISH_STAGING_MARK = ".tmp-"
PUBLISH_PREVIOUS_MARK = ".old-"

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


def study_dir_name(study_id: str) -> str:
    """Folder name of a study: ``study_<id>``."""
    return f"{STUDY_PREFIX}{study_id}"


def study_id_of(path: str | Path) -> str:
    """``experiments/study_<id>`` -> ``<id>`` (any other folder name as it is)."""
    return Path(path).name.removeprefix(STUDY_PREFIX)


def is_study_dir(path: Path) -> bool:
    return path.name.startswith(STUDY_PREFIX)


def study_dirs(experiments_dir: str | Path) -> list[Path]:
    """Every study folder (``study_*``) of an experiments folder, by name."""
    root = Path(experiments_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and is_study_dir(p))


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

    @property
    def work_log(self) -> Path:
        return self.logs / WORK_LOG_NAME


@dataclass(frozen=True)
class StudyLayout:
    """The paths of one study."""

    path: Path

    @classmethod
    def of(cls, experiments_dir: str | Path, study_id: str) -> StudyLayout:
        return cls(Path(experiments_dir) / study_dir_name(study_id))

    @property
    def study_id(self) -> str:
        return study_id_of(self.path)

    @property
    def result(self) -> Path:
        """The complete study's result record, written once by the worker that completes it."""
        return self.path / STUDY_RESULT_NAME

    def mlflow_buffer(self, worker_id: str) -> Path:
        """One worker's metrics outage buffer (workers share the study folder, never a buffer)."""
        return self.path / MLFLOW_BUFFERS_DIRNAME / f"{worker_id}.jsonl"

    @property
    def experiments_dir(self) -> Path:
        return self.path.parent

    @property
    def pressure_marker(self) -> Path:
        return self.path / PRESSURE_MARKER_NAME

    @property
    def retention_index(self) -> Path:
        """The study's ranking of finished trials, rebuilt from the manifests when stale."""
        return self.path / RETENTION_INDEX_NAME

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


@dataclass(frozen=True)
class PublishedLayout:
    """A published hand-off folder, and the siblings a publication builds and replaces it by."""

    path: Path

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS_DIRNAME

    @property
    def record(self) -> Path:
        return self.path / PUBLISHED_RECORD_NAME

    def staging(self, pid: int) -> Path:
        """Where process ``pid`` builds the new folder: ``.<name>.tmp-<pid>``."""
        return self.path.with_name(f".{self.path.name}{PUBLISH_STAGING_MARK}{pid}")

    def previous(self, pid: int) -> Path:
        """Where process ``pid`` moves the old folder while it swaps: ``.<name>.old-<pid>``."""
        return self.path.with_name(f".{self.path.name}{PUBLISH_PREVIOUS_MARK}{pid}")

    def leftovers(self) -> list[tuple[Path, int, bool]]:
        """Staging and previous folders beside the target: (path, pid, is_previous)."""
        parent = self.path.parent
        if not parent.is_dir():
            return []
        found = []
        for mark, previous in ((PUBLISH_STAGING_MARK, False), (PUBLISH_PREVIOUS_MARK, True)):
            prefix = f".{self.path.name}{mark}"
            for child in sorted(parent.glob(f"{prefix}*")):
                pid = child.name.removeprefix(prefix)
                if pid.isdigit():
                    found.append((child, int(pid), previous))
        return found
