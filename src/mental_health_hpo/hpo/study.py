"""Study configuration: storage URL, sampler, pruner. The same name means the same study.

Storage is a URL: ``sqlite:///experiments/optuna.db`` (the default, inside the project), any
SQLAlchemy URL (``postgresql://user@127.0.0.1/optuna``), or ``journal:///path/study.log`` for an
Optuna journal file. Relative sqlite and journal paths are taken from the project root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage

from mental_health_hpo.hpo.search_space import SearchSpace

SamplerName = Literal["tpe", "random", "grid"]
PrunerName = Literal["none", "median", "percentile", "hyperband"]


@dataclass(frozen=True)
class StudyConfig:
    """The ``hpo.study`` parameters."""

    name: str = "redsm5"
    storage: str = "sqlite:///experiments/optuna.db"
    seed: int = 42
    sampler: SamplerName = "tpe"
    pruner: PrunerName = "median"
    n_trials: int = 3
    trial_timeout_s: float | None = None
    n_startup_trials: int = 2
    n_warmup_steps: int = 1
    percentile: float = 50.0
    experiments_dir: str = "experiments"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise ValueError(
                f"hpo.study.name must be letters, digits, '_', '.', '-' (it names a folder), "
                f"got {self.name!r}"
            )
        if self.sampler not in ("tpe", "random", "grid"):
            raise ValueError(f"hpo.study.sampler must be tpe, random or grid, got {self.sampler!r}")
        if self.pruner not in ("none", "median", "percentile", "hyperband"):
            raise ValueError(
                f"hpo.study.pruner must be none, median, percentile or hyperband, "
                f"got {self.pruner!r}"
            )
        if self.n_trials < 1:
            raise ValueError(f"hpo.study.n_trials must be >= 1, got {self.n_trials}")
        if self.trial_timeout_s is not None and self.trial_timeout_s <= 0:
            raise ValueError("hpo.study.trial_timeout_s must be > 0 or null")

    @property
    def study_id(self) -> str:
        """The folder-safe id of the study: ``experiments/study_<id>/``."""
        return self.name

    def study_dir(self, project_root: Path) -> Path:
        return _absolute(self.experiments_dir, project_root) / f"study_{self.study_id}"


def _absolute(path: str, root: Path) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else root / candidate


def make_storage(url: str, project_root: Path) -> BaseStorage:
    """An Optuna storage for ``url``; relative file paths are resolved against the project."""
    if url.startswith("journal:///"):
        # journal:///relative/file.log (from the project) or journal:////abs/file.log
        path = _absolute(url.removeprefix("journal:///"), project_root)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        path = _absolute(url.removeprefix("sqlite:///"), project_root)
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
    return RDBStorage(url)


def make_sampler(config: StudyConfig, space: SearchSpace) -> optuna.samplers.BaseSampler:
    """A seeded sampler; the same seed and history give the same suggestions."""
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=config.seed)
    if config.sampler == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=config.seed)
    return optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=config.n_startup_trials)


def make_pruner(config: StudyConfig) -> optuna.pruners.BasePruner:
    """Pruners are fed the optimization metric after every epoch."""
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=config.n_startup_trials, n_warmup_steps=config.n_warmup_steps
        )
    if config.pruner == "percentile":
        return optuna.pruners.PercentilePruner(
            config.percentile,
            n_startup_trials=config.n_startup_trials,
            n_warmup_steps=config.n_warmup_steps,
        )
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def open_study(config: StudyConfig, space: SearchSpace, project_root: Path) -> optuna.Study:
    """Create the study, or load it when one of that name exists in the storage."""
    return optuna.create_study(
        study_name=config.name,
        storage=make_storage(config.storage, project_root),
        sampler=make_sampler(config, space),
        pruner=make_pruner(config),
        direction="maximize",
        load_if_exists=True,
    )


def storage_for_display(url: str) -> str:
    """The storage URL with any password replaced, for logs and reports."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)


def study_summary(study: optuna.Study) -> dict[str, Any]:
    """Trial counts by state: what the progress line and the reports show."""
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts
