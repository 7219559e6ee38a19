"""The `redsm5_paper` environment: the authors' protocol, checked offline.

The hub encoder and the gated corpus cannot load here, so the run uses the tiny encoder and, as
data, the public sample and a synthetic corpus, both through the environment's own settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "redsm5-sample"


def paper_params() -> dict[str, Any]:
    from kedro.config import OmegaConfigLoader

    conf = Path(__file__).resolve().parents[2] / "conf"
    loader = OmegaConfigLoader(
        str(conf),
        base_env="base",
        default_run_env="redsm5_paper",
        merge_strategy={"parameters": "soft"},
    )
    return dict(loader["parameters"])


def test_environment_sets_the_authors_protocol_and_keeps_the_rest() -> None:
    params = paper_params()
    ingest, hpo = params["data_ingest"], params["hpo"]
    assert ingest["splits"] == {"train": 0.7, "validation": 0.1, "test": 0.2, "seed": 42}
    assert ingest["source"]["kind"] == "hf"
    assert ingest["source"]["hf"]["token_env"] == "HF_TOKEN"  # kept from base (soft merge)
    model = hpo["base"]["model"]
    assert model["encoder"] in ("mental/mental-bert-base-uncased", "bert-base-uncased")
    assert model["input_format"] == "multi_label"
    assert hpo["base"]["trainer"]["optimization_metric"].startswith("val_")
    assert params["evaluate"]["threshold"] == 0.5


def run_env(project: Path, pipeline: str, params: dict[str, Any]) -> None:
    import mlflow
    from kedro.framework.session import KedroSession

    try:
        with KedroSession.create(
            project_path=project, env="redsm5_paper", runtime_params=params
        ) as session:
            session.run(pipeline_names=[pipeline])
    finally:
        while mlflow.active_run():
            mlflow.end_run()


@pytest.mark.slow
@pytest.mark.parametrize("source", ["sample", "synthetic"])
def test_paper_protocol_runs_offline_and_reports_the_anchors(
    kedro_project: Path, tiny_model_dir: Path, source: str
) -> None:
    if source == "sample" and not SAMPLE.is_dir():
        pytest.skip(f"public sample not found at {SAMPLE}")
    data: dict[str, Any] = (
        {"kind": "csv", "csv": {"path": str(SAMPLE)}}
        if source == "sample"
        else {"kind": "synthetic", "synthetic": {"n_posts": 40}}
    )
    params = {
        "data_ingest": {"source": data},
        "hpo": {
            "study": {"n_trials": 1, "pruner": "none", "trial_timeout_s": 600},
            "base": {
                "model": {"encoder": str(tiny_model_dir), "max_length": 128, "stride": 32},
                "trainer": {"epochs": 1},
            },
        },
    }
    run_env(kedro_project, "hpo", params)
    run_env(kedro_project, "evaluate", {})

    report = json.loads(
        (
            kedro_project / "experiments" / "study_redsm5_paper" / "evaluation_report.json"
        ).read_text()
    )
    reference = report["paper_reference"]
    assert [a["f1_macro"] for a in reference["anchors"]] == [0.28, 0.36, 0.489]
    assert "NO_SYMPTOMS" in reference["project"]["per_label_f1"]
    assert report["config"]["model"]["input_format"] == "multi_label"
    splits = report["baselines"]["splits"]
    total = sum(s["n_posts"] for s in splits.values())
    assert splits["test"]["n_posts"] == pytest.approx(0.2 * total, abs=2)
    assert reference["project"]["n_posts"] == splits["test"]["n_posts"]
