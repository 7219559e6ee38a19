"""data_ingest: ReDSM5 from its source to model-ready, leak-checked splits."""

from mental_health_hpo.pipelines.data_ingest.pipeline import create_pipeline

__all__ = ["create_pipeline"]
