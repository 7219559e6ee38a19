"""Kedro datasets of the project (the only package here that imports kedro)."""

from mental_health_hpo.checkpointing.publish import PublishedRecord
from mental_health_hpo.datasets.checkpoint_dataset import (
    BestCheckpoint,
    CheckpointDataset,
    CheckpointReference,
)
from mental_health_hpo.datasets.outdated_dataset import OutdatedDataset
from mental_health_hpo.datasets.plotly_html_dataset import PlotlyHTMLDataset

__all__ = [
    "BestCheckpoint",
    "CheckpointDataset",
    "CheckpointReference",
    "OutdatedDataset",
    "PlotlyHTMLDataset",
    "PublishedRecord",
]
