"""The trainer's side of the checkpoint core: what identifies a run's checkpoints (config hash,
architecture), refusing another configuration's, and forwarding committed metrics without ever
publishing a step twice.

Metrics leave the trainer only through the checkpoint core's commit callback, so a published
step is always backed by a committed checkpoint (or journal entry).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mental_health_hpo.checkpointing import (
    IncompatibleCheckpointError,
    LoadedCheckpoint,
    MetricRecord,
    architecture_signature,
)
from mental_health_hpo.model import DualAgentModel, ModelConfig
from mental_health_hpo.training.config import TrainerConfig
from mental_health_hpo.workspace import Storage
from mental_health_hpo.workspace.layout import TrialLayout

#: What ``on_metrics`` receives: committed records, in step order.
MetricsCallback = Callable[[list[MetricRecord]], None]

#: Trainer settings that change how a run is executed, never what it computes: a resume may
#: change them (and they never enter the config hash).
_VOLATILE_SETTINGS = ("progress_bar", "num_workers", "device")


def config_hash(model_config: ModelConfig, trainer_config: TrainerConfig) -> str:
    """SHA-256 of everything that must match for a checkpoint to be resumed."""
    resolved = {"model": model_config.public_dict(), "trainer": trainer_config.model_dump()}
    for volatile in _VOLATILE_SETTINGS:
        resolved["trainer"].pop(volatile, None)
    canonical = json.dumps(resolved, sort_keys=True, default=str).encode()
    return hashlib.sha256(canonical).hexdigest()


class OncePerStepPublisher:
    """Forwards committed records to ``on_metrics``, never a step at or below ``logged_up_to``.

    A resume replays the epochs after the last full checkpoint; when retention journaled some of
    them without a checkpoint (``min_interval_epochs`` > 1) their steps were already published.
    """

    def __init__(self, on_metrics: MetricsCallback | None) -> None:
        self.on_metrics = on_metrics
        self.logged_up_to: int | None = None

    def __call__(self, record: MetricRecord) -> None:
        if self.on_metrics is None:
            return
        if self.logged_up_to is not None and record.step <= self.logged_up_to:
            return
        self.on_metrics([record])


def architecture_of(net: DualAgentModel) -> dict[str, Any]:
    """What a checkpoint must match to be loaded into ``net``: tensors and head types."""
    heads = {k: str(v) for k, v in net.head_types().items()}
    return architecture_signature(net, heads)


def check_same_config(loaded: LoadedCheckpoint, expected: str, directory: object) -> None:
    """Refuse to resume a checkpoint written by another configuration (the manager only records
    the hash): mixing two configurations' optimizer states and schedules is never intended."""
    record = loaded.record
    found = str(getattr(record, "config_hash", "") or "")
    if found and found != expected:
        raise IncompatibleCheckpointError(
            f"{directory}: checkpoint {record.id} was written by another configuration "
            f"(config hash {found[:12]}, this run {expected[:12]}); use a fresh checkpoint_dir "
            "or the original model and trainer configs"
        )


def trial_label(checkpoint_dir: str | Path | Storage | None) -> str:
    """``trial_0002`` for a study's trial, the folder name otherwise, ``run`` without one."""
    if checkpoint_dir is None:
        return "run"
    if not isinstance(checkpoint_dir, str | Path):  # a storage: its folder or URL names it
        checkpoint_dir = checkpoint_dir.describe("").rstrip("/").rsplit("://", 1)[-1]
    return TrialLayout(Path(checkpoint_dir).parent).trial_id


__all__ = [
    "MetricsCallback",
    "OncePerStepPublisher",
    "architecture_of",
    "check_same_config",
    "config_hash",
    "trial_label",
]
