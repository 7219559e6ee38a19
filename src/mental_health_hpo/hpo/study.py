"""Study configuration: storage URL, sampler, pruner. The same name means the same study.

Storage is a URL: ``sqlite:///experiments/optuna.db`` (the default, inside the project), any
SQLAlchemy URL (``postgresql://user@127.0.0.1/optuna``), or ``journal:///path/study.log`` for an
Optuna journal file. Relative sqlite and journal paths are taken from the project root.
"""

from __future__ import annotations

import hashlib
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage

from mental_health_hpo.hpo.search_space import SearchSpace
from mental_health_hpo.ops.locations import Location, ObjectStoreUrl, local_folder, parse_location
from mental_health_hpo.workspace.layout import StudyLayout

SamplerName = Literal["tpe", "random", "grid"]
PrunerName = Literal["none", "median", "percentile", "hyperband"]
EXPERIMENTS_DIR_KEY = "hpo.study.experiments_dir"
CACHE_DIR_KEY = "hpo.study.cache_dir"


@dataclass(frozen=True)
class StudyConfig:
    """The ``hpo.study`` parameters."""

    name: str = "redsm5"
    storage: str = "sqlite:///experiments/optuna.db"
    seed: int = 42
    sampler: SamplerName = "tpe"
    pruner: PrunerName = "median"
    n_trials: int = 3
    #: Opt-in seconds per trial (per attempt: a resumed trial gets a fresh budget).
    trial_timeout_s: float | None = None
    #: The timeout is checked after every this many optimizer steps, and after each epoch.
    trial_timeout_check_every_steps: int = 10
    n_startup_trials: int = 2
    n_warmup_steps: int = 1
    percentile: float = 50.0
    #: A folder (local, or shared by every host: NFS, a ReadWriteMany volume), or a bucket
    #: prefix ``s3://bucket/prefix`` (endpoint and keys from the environment or credentials.yml).
    experiments_dir: str = "experiments"
    #: This worker's local folder for a study in a bucket: the running trial's checkpoint
    #: before its upload, the logs and the tracking outage buffers. Never shared.
    cache_dir: str = "data/cache"
    #: Seconds a trial's lease lasts without a heartbeat; a killed worker's trial is taken over
    #: by another worker after this (within two periods). Renewed every third of it.
    lease_s: float = 60.0
    #: A worker with no trial left to claim waits while trials run on other workers, to take
    #: over any whose worker dies; false: it stops at once, saying what still runs elsewhere.
    wait_for_running: bool = True
    #: torch threads of each trial; null: the host's cores divided by the workers on this host.
    torch_threads: int | None = None

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
        if self.trial_timeout_check_every_steps < 1:
            raise ValueError(
                "hpo.study.trial_timeout_check_every_steps must be >= 1, "
                f"got {self.trial_timeout_check_every_steps}"
            )
        if self.lease_s <= 0:
            raise ValueError(f"hpo.study.lease_s must be > 0 seconds, got {self.lease_s}")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ValueError(
                f"hpo.study.torch_threads must be >= 1 or null, got {self.torch_threads}"
            )
        # Before anything is written: a URL is never taken as a relative folder ("s3:").
        parse_location(self.experiments_dir, EXPERIMENTS_DIR_KEY)
        local_folder(self.cache_dir, CACHE_DIR_KEY)

    @property
    def study_id(self) -> str:
        """The folder-safe id of the study: ``experiments/study_<id>/``."""
        return self.name

    @property
    def in_bucket(self) -> bool:
        """The experiments tree is a bucket prefix, not a folder."""
        return isinstance(parse_location(self.experiments_dir, EXPERIMENTS_DIR_KEY), ObjectStoreUrl)

    def study_dir(self, project_root: Path) -> Location:
        """Where the study's shared files live: a folder, or a bucket prefix."""
        location = parse_location(self.experiments_dir, EXPERIMENTS_DIR_KEY)
        if isinstance(location, Path):
            location = _absolute(str(location), project_root)
        return StudyLayout.of(location, self.study_id).path

    def work_dir(self, project_root: Path) -> Path:
        """This worker's local folder of the study (logs, outage buffers, the checkpoint
        cache): the study folder itself on a filesystem, under ``cache_dir`` for a bucket."""
        study = self.study_dir(project_root)
        if isinstance(study, Path):
            return study
        cache = _absolute(str(local_folder(self.cache_dir, CACHE_DIR_KEY)), project_root)
        return StudyLayout.of(cache, self.study_id).folder


def _absolute(path: str, root: Path) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else root / candidate


def resolve_storage_url(url: str, project_root: Path) -> str:
    """``url`` with relative sqlite and journal paths made absolute against the project."""
    if url.startswith("journal:///") and not url.startswith("journal:////"):
        return f"journal://{_absolute(url.removeprefix('journal:///'), project_root)}"
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return f"sqlite:///{_absolute(url.removeprefix('sqlite:///'), project_root)}"
    return url


def journal_path(url: str) -> Path:
    """The file of a resolved ``journal:///`` URL."""
    return Path("/" + url.removeprefix("journal:").lstrip("/"))


def make_storage_folder(url: str) -> None:
    """Create the folder of a resolved sqlite or journal file, before anything opens it.

    Why: the default ``sqlite:///experiments/optuna.db`` lives in a folder that nothing else
    creates once ``hpo.study.experiments_dir`` points elsewhere (a deployment's shared folder, a
    bucket), and SQLite cannot open a file in a missing folder ("unable to open database file").
    """
    if url.startswith("journal:///"):
        journal_path(url).parent.mkdir(parents=True, exist_ok=True)
    elif url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def make_storage(url: str, project_root: Path) -> BaseStorage:
    """An Optuna storage for ``url``; relative file paths are resolved against the project."""
    url = resolve_storage_url(url, project_root)
    make_storage_folder(url)
    if url.startswith("journal:///"):
        return JournalStorage(JournalFileBackend(str(journal_path(url))))
    if url.startswith("sqlite:///"):
        # Several workers on one host write the same file: wait for each other's commits.
        return RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return RDBStorage(url)


def derived_seed(seed: int, trials_so_far: int) -> int:
    """The sampler's seed for the next ask: a killed and continued study asks what an unbroken
    one would, since the seed depends on the study's history, not on how many processes ran it."""
    digest = hashlib.sha256(f"{seed}:{trials_so_far}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def make_sampler(
    config: StudyConfig, space: SearchSpace, seed: int | None = None
) -> optuna.samplers.BaseSampler:
    """A seeded sampler; the same seed and history give the same suggestions."""
    seed = config.seed if seed is None else seed
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=config.n_startup_trials)


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


def open_study(
    config: StudyConfig,
    space: SearchSpace,
    project_root: Path,
    metric_name: str = "val_f1_macro",
) -> optuna.Study:
    """Create the study, or load it when one of that name exists in the storage.

    The objective is named after the optimization metric, so optuna-dashboard and the plots say
    ``val_f1_macro`` rather than "Objective 0".
    """
    for attempt in range(5):  # workers starting together race to create Optuna's tables
        try:
            study = optuna.create_study(
                study_name=config.name,
                storage=make_storage(config.storage, project_root),
                sampler=make_sampler(config, space),
                pruner=make_pruner(config),
                direction="maximize",
                load_if_exists=True,
            )
            break
        except sqlalchemy.exc.DBAPIError:
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
    if study.metric_names != [metric_name]:
        with warnings.catch_warnings():  # experimental since 3.2 and stable in use: not news
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([metric_name])
    return study


def storage_for_display(url: str) -> str:
    """The storage URL with any password replaced, for logs and reports."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)
