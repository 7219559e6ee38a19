"""data_ingest: source -> raw tables -> aligned evidence -> split model inputs + fingerprint."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from mental_health_hpo.pipelines.data_ingest.nodes import align_evidence, load_raw, split_and_build


def create_pipeline(**kwargs: object) -> Pipeline:
    """The first pipeline of the project; ``hpo`` and ``evaluate`` read its outputs."""
    return Pipeline(
        [
            Node(
                load_raw,
                inputs="params:data_ingest.source",
                outputs=["redsm5_posts", "redsm5_annotations", "source_origin"],
                name="load_raw_redsm5",
            ),
            Node(
                align_evidence,
                inputs=["redsm5_posts", "redsm5_annotations", "params:data_ingest.alignment"],
                outputs=["aligned_annotations", "alignment_report"],
                name="align_evidence",
            ),
            Node(
                split_and_build,
                inputs=[
                    "redsm5_posts",
                    "aligned_annotations",
                    "source_origin",
                    "params:data_ingest",
                ],
                outputs=[
                    "model_input_train",
                    "model_input_validation",
                    "model_input_test",
                    "dataset_fingerprint",
                ],
                name="split_and_build_model_input",
            ),
        ]
    )
