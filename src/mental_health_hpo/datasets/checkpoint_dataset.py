"""``CheckpointDataset``: hands the best checkpoint(s) of a study from hpo to evaluate.

Saving means one thing: publish. hpo saves a ``CheckpointReference`` (committed checkpoints of
its best trial); the dataset hard-links them into its folder (verified, swapped in atomically)
beside a ``published.json`` record of the trial. Loading is lazy: it reads that record and the
checkpoints' manifest, never the weights, and returns a ``BestCheckpoint`` whose refs evaluate
verifies and loads once each (falling back, past a corrupt one, to the trial's other retained
checkpoints). ``load_args.study_name`` selects another study's best trial the same way, from
``experiments/study_<name>``, so evaluate never looks around the catalog.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from kedro.io.core import AbstractDataset, DatasetError

from mental_health_hpo.checkpointing import CheckpointError, CheckpointRef
from mental_health_hpo.checkpointing.publish import (
    RECORD_NAME,
    PublishedRecord,
    best_of_folder,
    clear_published,
    publish_checkpoints,
    publish_to_storage,
    read_record,
    record_of,
    recover_published,
)
from mental_health_hpo.ops.locations import Location, ObjectStoreUrl, as_location, parse_location
from mental_health_hpo.workspace import TrialTakenOverError, storage_at
from mental_health_hpo.workspace.layout import StudyLayout, TrialLayout

logger = logging.getLogger(__name__)

#: Where the catalog entry ``best_checkpoint`` takes ``load_args.experiments_dir`` from.
EXPERIMENTS_DIR_KEY = "evaluate.experiments_dir (catalog best_checkpoint load_args)"


@dataclass(frozen=True)
class BestCheckpoint:
    """The study's best trial and where its checkpoints are; no weights are loaded yet."""

    record: PublishedRecord
    checkpoints: list[CheckpointRef]  # best and co-best, first by epoch
    fallbacks: list[CheckpointRef]  # the trial's other retained checkpoints, best first

    @property
    def trial_dir(self) -> Location:
        return as_location(self.record.trial_dir)

    @property
    def study_dir(self) -> Location:
        return as_location(self.record.study_dir)

    @property
    def metric_name(self) -> str:
        return self.record.metric_name

    @property
    def value(self) -> float:
        return self.record.value


@dataclass(frozen=True)
class CheckpointReference:
    """What hpo hands over: committed checkpoints of the best trial, to publish, not rewrite."""

    checkpoints_dir: Location
    checkpoint_ids: list[str]

    @classmethod
    def of_study_result(cls, result: Mapping[str, Any]) -> CheckpointReference:
        """The best checkpoint(s) a complete study's result (``study_result.json``) names."""
        best = result["best"]["checkpoint"]
        trial = TrialLayout(as_location(str(best["trial_dir"])))
        return cls(trial.checkpoints, list(best["checkpoint_ids"]))


def _by_epoch(refs: list[CheckpointRef]) -> list[CheckpointRef]:
    return sorted(refs, key=lambda r: (r.record.epoch, r.record.step, r.record.id))


class CheckpointDataset(AbstractDataset[CheckpointReference, BestCheckpoint]):
    """Publishes a study's best checkpoint(s); loads them back lazily, with their trial record.

    Examples:
        Using the YAML API:

        ```yaml
        best_checkpoint:
          type: mental_health_hpo.datasets.CheckpointDataset
          filepath: data/06_models/best_checkpoint
          load_args:
            study_name: ${runtime_params:evaluate.study_name,null}
            experiments_dir: experiments
        ```

        Using the Python API:

        >>> from mental_health_hpo.datasets import CheckpointDataset, CheckpointReference
        >>> dataset = CheckpointDataset(filepath=tmp_path / "best_checkpoint")
        >>> dataset.save(CheckpointReference(trial_dir / "checkpoints", ["ckpt-e0001-s000040"]))
        >>> best = dataset.load()
        >>> assert best.record.checkpoint_ids == ["ckpt-e0001-s000040"]
    """

    DEFAULT_LOAD_ARGS: ClassVar[dict[str, Any]] = {
        "study_name": None,
        "experiments_dir": "experiments",
    }

    def __init__(
        self,
        *,
        filepath: str | Path,
        metric_name: str | None = None,
        load_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Creates a new instance of ``CheckpointDataset``.

        Args:
            filepath: The published folder (``data/06_models/best_checkpoint``); a study or
                trial folder also loads (its best trial), but is never written.
            metric_name: The optimization metric (maximised); defaults to the manifest's.
            load_args: ``study_name`` (load that study's best trial from
                ``<experiments_dir>/study_<name>`` instead of the published one) and
                ``experiments_dir`` (default ``experiments``).
            metadata: Any arbitrary metadata; ignored by Kedro, used by plugins.
        """
        self._filepath = PurePosixPath(Path(filepath).as_posix())
        self._metric_name = metric_name
        self._load_args = {**self.DEFAULT_LOAD_ARGS, **(load_args or {})}
        self.metadata = metadata
        # At catalog load, before any node: a URL is never taken as a relative folder.
        self._experiments = parse_location(
            str(self._load_args["experiments_dir"]), EXPERIMENTS_DIR_KEY
        )

    @property
    def _path(self) -> Path:
        return Path(str(self._filepath))

    @property
    def _published(self) -> Location:
        """The hand-off folder: ``filepath``; when the experiments tree is a bucket, the
        folder of that name beside the studies in the bucket (a worker on any host publishes
        there and evaluate on any host reads it; no local copy of the weights)."""
        if isinstance(self._experiments, ObjectStoreUrl):
            return self._experiments / self._path.name
        return self._path

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": self._filepath,
            "metric_name": self._metric_name,
            "load_args": self._load_args,
        }

    def _source(self) -> Location:
        """Where to load from: the named study, else this dataset's folder."""
        name = self._load_args.get("study_name")
        if name:
            return StudyLayout.of(self._experiments, str(name)).path
        published = self._published
        if isinstance(published, Path):
            recover_published(published)  # a publication killed between its renames
        return published

    def load(self) -> BestCheckpoint:
        source = self._source()
        record = read_record(source)
        holder = source  # the folder that holds the record's checkpoints
        if record is None:  # a study or trial folder (evaluate.study_name), not a published one
            record = best_of_folder(source, self._metric_name)
            holder = as_location(record.trial_dir) if record else source
        if record is None:
            raise DatasetError(
                f"no committed checkpoint with a metric value under {source}: run "
                f"`kedro run --pipelines hpo` first (or check evaluate.study_name)"
            )
        published = {r.record.id: r for r in CheckpointRef.ranked(holder, record.metric_name)}
        missing = [i for i in record.checkpoint_ids if i not in published]
        if missing:
            raise DatasetError(
                f"{source / RECORD_NAME} names checkpoint(s) {missing} that {holder} does not "
                f"hold: rerun `kedro run --pipelines hpo` to publish the best checkpoint again"
            )
        chosen = set(record.checkpoint_ids)
        fallbacks = [
            r
            for r in CheckpointRef.ranked(as_location(record.trial_dir), record.metric_name)
            if r.record.id not in chosen and r.value > float("-inf")
        ]
        return BestCheckpoint(
            record=record,
            checkpoints=_by_epoch([published[i] for i in record.checkpoint_ids]),
            fallbacks=fallbacks,
        )

    def save(self, data: CheckpointReference) -> None:
        if not isinstance(data, CheckpointReference):
            raise DatasetError(
                f"CheckpointDataset publishes a CheckpointReference, got {type(data).__name__}"
            )
        target = self._published
        if not data.checkpoint_ids:  # a study without a completed trial: hand over nothing
            logger.warning("no best checkpoint to publish; clearing %s", target)
            if isinstance(target, Path):
                clear_published(target)
            else:
                storage_at(target).delete_prefix("")
            return
        checkpoints_dir = data.checkpoints_dir
        refs = {r.record.id: r for r in CheckpointRef.ranked(checkpoints_dir, self._metric_name)}
        missing = [i for i in data.checkpoint_ids if i not in refs]
        if missing:
            raise DatasetError(
                f"cannot publish the best checkpoint: checkpoint(s) {missing} not in the "
                f"manifest of {checkpoints_dir}"
            )
        chosen = _by_epoch([refs[i] for i in data.checkpoint_ids])
        record = record_of(checkpoints_dir.parent, chosen)
        extra = {RECORD_NAME: record.to_bytes()}
        try:  # the record goes inside the swap: never checkpoints without their record
            if isinstance(target, Path) and isinstance(checkpoints_dir, Path):
                publish_checkpoints(checkpoints_dir, data.checkpoint_ids, target, extra)
            else:
                if isinstance(target, Path):
                    logger.warning(
                        "the study is in a bucket, the hand-off folder %s is local: its weights "
                        "are copied here. Set evaluate.experiments_dir to the study's bucket "
                        "(as hpo.study.experiments_dir) to publish in the bucket instead",
                        target,
                    )
                publish_to_storage(checkpoints_dir, data.checkpoint_ids, target, extra)
        except (CheckpointError, TrialTakenOverError) as exc:
            raise DatasetError(f"cannot publish the best checkpoint: {exc}") from exc

    def _exists(self) -> bool:
        source = self._source()
        return (
            storage_at(source).exists(RECORD_NAME)
            or best_of_folder(source, self._metric_name) is not None
        )
