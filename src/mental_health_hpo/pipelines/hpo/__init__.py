"""hpo: an Optuna study in one Kedro node, resumable and fully tracked."""

from mental_health_hpo.pipelines.hpo.pipeline import create_pipeline

__all__ = ["create_pipeline"]
