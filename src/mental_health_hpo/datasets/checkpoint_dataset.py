"""``CheckpointDataset``: hands the best checkpoint of a study (or trial) between pipelines."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import torch
from kedro.io.core import AbstractDataset, DatasetError

from mental_health_hpo.checkpointing import (
    CheckpointError,
    CheckpointOptions,
    CheckpointRecord,
    RetentionPolicy,
    StudyRetention,
    find_best_checkpoints,
    load_checkpoint_ref,
    load_policy,
    open_checkpoints,
    policy_from_dict,
    ranked_checkpoints,
)
from mental_health_hpo.checkpointing.layout import is_study_dir, study_of
from mental_health_hpo.checkpointing.publish import clear_published, publish_checkpoints
from mental_health_hpo.checkpointing.study import finish_trial

logger = logging.getLogger(__name__)


@dataclass
class BestCheckpoint:
    """The loaded best checkpoint: its weights, its record and where it lives."""

    weights: dict[str, torch.Tensor]
    record: CheckpointRecord
    checkpoint_dir: Path
    trial_dir: Path
    metric_name: str
    value: float
    co_best: list[str] = field(default_factory=list)
    training_state: dict[str, Any] | None = None


@dataclass
class CheckpointPayload:
    """What ``save`` writes: one checkpoint of one trial."""

    epoch: int
    step: int
    metrics: dict[str, float]
    weights: Mapping[str, torch.Tensor]
    training_state: dict[str, Any] | None = None


@dataclass(frozen=True)
class CheckpointReference:
    """What hpo hands over: committed checkpoints of the best trial, to publish, not rewrite.

    Saving a reference publishes those checkpoints (hard links, verified, swapped in atomically)
    into the dataset's folder, which then holds exactly them.
    """

    checkpoints_dir: Path
    checkpoint_ids: list[str]


class CheckpointDataset(AbstractDataset[CheckpointPayload | Mapping[str, Any], BestCheckpoint]):
    """Loads the best verified checkpoint under a study or trial folder; saves one checkpoint.

    Loading walks the candidates best first and skips (with a warning) any that fail their
    SHA-256 or architecture check, so a corrupt best falls back to the next valid one.

    Examples:
        Using the YAML API:

        ```yaml
        best_checkpoint:
          type: mental_health_hpo.datasets.CheckpointDataset
          filepath: experiments/study_${runtime_params:study_id}
          metric_name: val_f1_macro
          load_args:
            with_training_state: false
          save_args:
            policy: default
        ```

        Using the Python API:

        >>> from mental_health_hpo.datasets import CheckpointDataset, CheckpointPayload
        >>> import torch
        >>> dataset = CheckpointDataset(filepath=tmp_path / "trial_0", metric_name="f1")
        >>> dataset.save(CheckpointPayload(0, 10, {"f1": 0.5}, {"w": torch.ones(2)}))
        >>> best = dataset.load()
        >>> assert best.value == 0.5
    """

    DEFAULT_LOAD_ARGS: ClassVar[dict[str, Any]] = {
        "with_training_state": False,
        "architecture": None,
    }
    DEFAULT_SAVE_ARGS: ClassVar[dict[str, Any]] = {
        "policy": "default",
        "config_hash": "",
        "architecture": None,
        "trial_name": "trial_final",
        "finish": False,
    }

    def __init__(
        self,
        *,
        filepath: str | Path,
        metric_name: str | None = None,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Creates a new instance of ``CheckpointDataset``.

        Args:
            filepath: A study folder (``experiments/study_<id>``), a trial folder or a trial's
                ``checkpoints`` folder.
            metric_name: The optimization metric (maximised); defaults to the manifest's.
            load_args: ``with_training_state`` (also load optimizer/RNG state when the best is a
                full checkpoint), ``architecture`` (a signature dict to check against).
            save_args: ``policy`` (a named policy, a YAML path or a mapping), ``config_hash``,
                ``architecture``, ``trial_name`` (used when ``filepath`` is a study folder) and
                ``finish`` (mark the trial finished after the save).
            metadata: Any arbitrary metadata; ignored by Kedro, used by plugins.
        """
        self._filepath = PurePosixPath(Path(filepath).as_posix())
        self._metric_name = metric_name
        self._load_args = {**self.DEFAULT_LOAD_ARGS, **(load_args or {})}
        self._save_args = {**self.DEFAULT_SAVE_ARGS, **(save_args or {})}
        self.metadata = metadata

    @property
    def _path(self) -> Path:
        return Path(str(self._filepath))

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": self._filepath,
            "metric_name": self._metric_name,
            "load_args": {k: v for k, v in self._load_args.items() if k != "architecture"},
            "save_args": {k: v for k, v in self._save_args.items() if k != "architecture"},
        }

    def load(self) -> BestCheckpoint:
        candidates = ranked_checkpoints(self._path, self._metric_name)
        candidates = [c for c in candidates if c.value > float("-inf")]
        if not candidates:
            raise DatasetError(f"no committed checkpoint with a metric value under {self._path}")
        co_best = [c.record.id for c in candidates if c.value == candidates[0].value]
        for ref in candidates:
            try:
                loaded = load_checkpoint_ref(ref, self._load_args.get("architecture"))
            except CheckpointError as exc:
                logger.warning("skipping checkpoint %s: %s", ref.path, exc)
                continue
            state = loaded.training_state if self._load_args["with_training_state"] else None
            return BestCheckpoint(
                weights=loaded.weights,
                record=ref.record,
                checkpoint_dir=ref.path,
                trial_dir=ref.trial_dir,
                metric_name=ref.metric_name,
                value=ref.value,
                co_best=co_best,
                training_state=state,
            )
        raise DatasetError(f"every checkpoint under {self._path} failed verification")

    def save(self, data: CheckpointPayload | CheckpointReference | Mapping[str, Any]) -> None:
        if isinstance(data, CheckpointReference):
            if not data.checkpoint_ids:  # a study without a completed trial: hand over nothing
                logger.warning("no best checkpoint to publish; clearing %s", self._path)
                clear_published(self._path)
                return
            try:
                publish_checkpoints(Path(data.checkpoints_dir), data.checkpoint_ids, self._path)
            except CheckpointError as exc:
                raise DatasetError(f"cannot publish the best checkpoint: {exc}") from exc
            return
        payload = data if isinstance(data, CheckpointPayload) else CheckpointPayload(**data)
        weights = payload.weights
        if isinstance(weights, torch.nn.Module):
            weights = weights.state_dict()
        if not self._metric_name:
            raise DatasetError("CheckpointDataset.save needs metric_name")
        options = CheckpointOptions(
            metric_name=self._metric_name,
            policy=self._policy(),
            writer="sync",
            architecture=self._save_args.get("architecture"),
            config_hash=str(self._save_args.get("config_hash", "")),
        )
        directory = self._trial_checkpoints_dir()
        with open_checkpoints(directory, options) as manager:
            manager.save(
                epoch=payload.epoch,
                step=payload.step,
                metrics=payload.metrics,
                weights=weights,
                training_state=payload.training_state,
                force=True,
            )
        if self._save_args.get("finish"):
            study = study_of(directory)
            if study is None:
                finish_trial(directory, self._metric_name)
            else:
                retention = StudyRetention(study.path, options.policy, self._metric_name)
                retention.trial_finished(directory.parent)

    def _exists(self) -> bool:
        return bool(find_best_checkpoints(self._path, self._metric_name))

    def _policy(self) -> RetentionPolicy:
        policy = self._save_args.get("policy", "default")
        if isinstance(policy, RetentionPolicy):
            return policy
        if isinstance(policy, Mapping):
            return policy_from_dict(deepcopy(dict(policy)))
        return load_policy(policy)

    def _trial_checkpoints_dir(self) -> Path:
        path = self._path
        if path.name == "checkpoints":
            return path
        if is_study_dir(path):
            return path / str(self._save_args["trial_name"]) / "checkpoints"
        return path / "checkpoints"
