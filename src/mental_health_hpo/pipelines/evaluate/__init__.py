"""evaluate: the study's best trial, its best / co-best checkpoints, on the test split, once."""

from mental_health_hpo.pipelines.evaluate.pipeline import create_pipeline

__all__ = ["create_pipeline"]
