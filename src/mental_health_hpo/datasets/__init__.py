"""Kedro datasets of the project (the only package here that imports kedro)."""

from mental_health_hpo.datasets.checkpoint_dataset import (
    BestCheckpoint,
    CheckpointDataset,
    CheckpointPayload,
    CheckpointReference,
)

__all__ = ["BestCheckpoint", "CheckpointDataset", "CheckpointPayload", "CheckpointReference"]
