"""The three ReDSM5 sources: ``synthetic`` (default, offline), ``csv`` (a folder) and ``hf``.

Each returns a :class:`RawReDSM5`: the two official tables, the splits the source itself defines
(if any) and a description of where the data came from, for the fingerprint.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from mental_health_hpo.constants import SPLITS
from mental_health_hpo.data.csv_files import read_csv_folder
from mental_health_hpo.data.errors import DataConfigError, DatasetSourceError
from mental_health_hpo.data.schema import ANNOTATIONS_FILE, POSTS_FILE
from mental_health_hpo.data.synthetic import SyntheticConfig, generate_synthetic
from mental_health_hpo.data.validation import validate_raw
from mental_health_hpo.ops.hub_errors import describe_permanent, is_transient_hub_error
from mental_health_hpo.retry import RetriesExhaustedError, with_retries

logger = logging.getLogger(__name__)

SourceKind = Literal["synthetic", "csv", "hf"]


@dataclass(frozen=True)
class HFSourceConfig:
    """A hub dataset (or a local folder laid out like its repo), each file loaded on its own.

    ReDSM5 declares its two CSVs, whose columns differ, as the splits ``posts`` and
    ``annotations`` of one config, so a plain ``load_dataset(id)`` fails with a cast error.

    Attributes:
        dataset_id: hub id (``irlab-udc/redsm5``) or a local folder with the same files.
        revision: branch, tag or commit; pin a commit for reproducible runs.
        token_env: name of the environment variable holding the token (never a literal token).
        posts_file: the posts CSV in the repo, or ``{source_split: file}`` when the source has
            its own train/validation/test files.
        annotations_file: the annotations CSV in the repo.
        split_mapping: ``{train|validation|test: source split name}``; required when
            ``posts_file`` is a mapping.
    """

    dataset_id: str = "irlab-udc/redsm5"
    revision: str = "main"
    token_env: str = "HF_TOKEN"
    posts_file: str | dict[str, str] = POSTS_FILE
    annotations_file: str = ANNOTATIONS_FILE
    split_mapping: dict[str, str] | None = None


@dataclass(frozen=True)
class SourceConfig:
    """Which source to read, from the ``data_ingest.source`` parameters."""

    kind: SourceKind = "synthetic"
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    csv_path: str = "data/01_raw/redsm5"
    hf: HFSourceConfig = field(default_factory=HFSourceConfig)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> SourceConfig:
        """Build from plain parameters, naming the field when one is wrong."""
        kind = params.get("kind", "synthetic")
        if kind not in ("synthetic", "csv", "hf"):
            raise DataConfigError(
                f"data_ingest.source.kind must be 'synthetic', 'csv' or 'hf', got {kind!r}"
            )
        synthetic = dict(params.get("synthetic") or {})
        if "filler_sentences" in synthetic:
            synthetic["filler_sentences"] = tuple(synthetic["filler_sentences"])
        try:
            return cls(
                kind=kind,
                synthetic=SyntheticConfig(**synthetic),
                csv_path=str(params.get("csv", {}).get("path", cls.csv_path)),
                hf=HFSourceConfig(**(params.get("hf") or {})),
            )
        except TypeError as error:
            raise DataConfigError(f"data_ingest.source: {error}") from error


@dataclass
class RawReDSM5:
    """The two official tables plus what the fingerprint needs to know of their origin.

    ``post_splits`` maps post_id to train/validation/test when the source defines splits.
    """

    posts: pd.DataFrame
    annotations: pd.DataFrame
    origin: dict[str, Any]
    post_splits: dict[str, str] | None = None


def load_csv(folder: Path) -> RawReDSM5:
    """Read a folder in the official file format, like the public sample."""
    posts, annotations = read_csv_folder(folder)
    return RawReDSM5(posts, annotations, {"source": "csv", "path": str(folder)})


def _hf_load(config: HFSourceConfig, data_files: str | dict[str, str], split: str | None) -> Any:
    import datasets  # heavy: imported only for this source

    token = os.environ.get(config.token_env) or None
    return datasets.load_dataset(
        config.dataset_id,
        data_files=data_files,
        split=split,
        revision=config.revision,
        token=token,
    )


def _hf_error(config: HFSourceConfig, needed: list[str], found: list[str], why: str) -> str:
    return (
        f"Could not load ReDSM5 from hf dataset {config.dataset_id!r} at revision "
        f"{config.revision!r}: {why}. Needed splits: {needed}; found: {found}. Fix: check "
        f"data_ingest.source.hf (dataset_id, revision, posts_file, annotations_file, "
        f"split_mapping); for the gated irlab-udc/redsm5, accept its terms on the hub and set "
        f"{config.token_env} (see `hf auth login`); or use source kind 'csv' with a folder."
    )


def load_hf(
    config: HFSourceConfig,
    loader: Callable[[HFSourceConfig, str | dict[str, str], str | None], Any] = _hf_load,
    sleep: Callable[[float], None] = time.sleep,
) -> RawReDSM5:
    """Load posts and annotations with ``datasets``, each file on its own.

    Timeouts, dropped connections and 408/429/5xx are retried with back-off; a gated or missing
    dataset, a wrong revision or file, or offline mode fail at once with what to fix.
    """
    describe = f"loading {config.dataset_id!r}@{config.revision!r}"

    def load(files: str | dict[str, str], split: str | None) -> Any:
        try:
            return with_retries(
                lambda: loader(config, files, split),
                describe,
                sleep=sleep,
                retry_if=is_transient_hub_error,
            )
        except DatasetSourceError:
            raise
        except RetriesExhaustedError as error:
            raise DatasetSourceError(_hf_error(config, list(SPLITS), [], str(error))) from error
        except Exception as error:  # not retried: gated, missing, offline, bad files
            why = describe_permanent(error, config.dataset_id)
            raise DatasetSourceError(_hf_error(config, list(SPLITS), [], why)) from error

    annotations = load(config.annotations_file, "train").to_pandas()
    post_splits: dict[str, str] | None = None
    if isinstance(config.posts_file, dict):
        mapping = config.split_mapping or {}
        needed = [mapping.get(name, name) for name in SPLITS]
        missing = [name for name in needed if name not in config.posts_file]
        if missing:
            raise DatasetSourceError(
                _hf_error(config, needed, sorted(config.posts_file), f"splits {missing} missing")
            )
        loaded = load({name: config.posts_file[name] for name in needed}, None)
        found = sorted(loaded.keys())
        parts = []
        post_splits = {}
        for ours, theirs in zip(SPLITS, needed, strict=True):
            if theirs not in loaded:
                raise DatasetSourceError(_hf_error(config, needed, found, f"no split {theirs!r}"))
            frame = loaded[theirs].to_pandas()
            parts.append(frame)
            post_splits.update(dict.fromkeys(frame["post_id"].astype(str), ours))
        posts = pd.concat(parts, ignore_index=True)
    else:
        if config.split_mapping:
            raise DatasetSourceError(
                _hf_error(
                    config,
                    list(config.split_mapping.values()),
                    [],
                    "split_mapping is set but posts_file names one file; give posts_file as "
                    "{source_split: file}",
                )
            )
        posts = load(config.posts_file, "train").to_pandas()
    for frame in (posts, annotations):
        frame["post_id"] = frame["post_id"].astype(str)
    annotations["sentence_id"] = annotations["sentence_id"].astype(str)
    origin = {
        "source": "hf",
        "dataset_id": config.dataset_id,
        "revision": config.revision,
        "resolved_revision": _resolve_revision(config),
    }
    return RawReDSM5(posts, annotations, origin, post_splits)


def _resolve_revision(config: HFSourceConfig) -> str | None:
    """The commit a hub revision points to; ``None`` for a local folder or when offline."""
    if Path(config.dataset_id).exists():
        return None
    try:
        from huggingface_hub import HfApi

        token = os.environ.get(config.token_env) or None
        return str(
            HfApi().dataset_info(config.dataset_id, revision=config.revision, token=token).sha
        )
    except Exception:  # offline or gated: the content hash still pins the data
        return None


def load_source(config: SourceConfig, project_root: Path | None = None) -> RawReDSM5:
    """Read the configured source and validate it before anything is written."""
    if config.kind == "synthetic":
        posts, annotations = generate_synthetic(config.synthetic)
        raw = RawReDSM5(posts, annotations, {"source": "synthetic", **_synthetic_origin(config)})
        origin = "the synthetic generator"
    elif config.kind == "csv":
        folder = Path(config.csv_path)
        if not folder.is_absolute() and project_root is not None:
            folder = project_root / folder
        raw = load_csv(folder)
        origin = f"csv folder {folder}"
    else:
        raw = load_hf(config.hf)
        origin = f"hf dataset {config.hf.dataset_id!r}@{config.hf.revision!r}"
    validate_raw(raw.posts, raw.annotations, origin)
    raw.annotations["status"] = raw.annotations["status"].astype("int64")
    return raw


def _synthetic_origin(config: SourceConfig) -> dict[str, Any]:
    from dataclasses import asdict

    from mental_health_hpo.data.synthetic import GENERATOR_VERSION

    return {"generator_version": GENERATOR_VERSION, "config": asdict(config.synthetic)}
