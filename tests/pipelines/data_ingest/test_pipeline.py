from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_pipeline

from mental_health_hpo.constants import CRITERIA

OUTPUTS = (
    "data/01_raw/redsm5_posts.csv",
    "data/02_intermediate/aligned_annotations.parquet",
    "data/05_model_input/model_input_train.parquet",
    "data/05_model_input/model_input_validation.parquet",
    "data/05_model_input/model_input_test.parquet",
    "data/05_model_input/dataset_fingerprint.json",
    "data/08_reporting/alignment_report.json",
)


@pytest.mark.slow
def test_data_ingest_runs_through_a_kedro_session(kedro_project: Path) -> None:
    params = {"data_ingest": {"source": {"synthetic": {"n_posts": 60}}}}
    run_pipeline(kedro_project, "data_ingest", params)
    for output in OUTPUTS:
        assert (kedro_project / output).exists(), output
    splits = {
        name: pd.read_parquet(kedro_project / f"data/05_model_input/model_input_{name}.parquet")
        for name in ("train", "validation", "test")
    }
    assert sum(len(frame) for frame in splits.values()) == 60 * len(CRITERIA)
    post_sets = [set(frame["post_id"]) for frame in splits.values()]
    assert not (
        post_sets[0] & post_sets[1] or post_sets[0] & post_sets[2] or post_sets[1] & post_sets[2]
    )
    fingerprint = json.loads((kedro_project / OUTPUTS[5]).read_text())
    assert fingerprint["source"] == "synthetic" and fingerprint["rows"]["posts"] == 60
    # soft merge: overriding n_posts kept the other synthetic parameters of the group
    assert fingerprint["config"]["seed"] == 42

    run_pipeline(kedro_project, "data_ingest", params)
    again = json.loads((kedro_project / OUTPUTS[5]).read_text())
    assert again["fingerprint"] == fingerprint["fingerprint"]


@pytest.mark.slow
def test_shared_sample_through_the_pipeline_reports_alignment(
    kedro_project: Path, shared_sample_dir: Path
) -> None:
    run_pipeline(
        kedro_project,
        "data_ingest",
        {"data_ingest": {"source": {"kind": "csv", "csv": {"path": str(shared_sample_dir)}}}},
    )
    report = json.loads((kedro_project / "data/08_reporting/alignment_report.json").read_text())
    assert report["counts"]["exact"] == 0 and report["total"] == 25
    assert report["counts"]["fuzzy"] + report["counts"]["unaligned"] == 25


@pytest.mark.slow
def test_bad_input_fails_clearly_and_writes_nothing(
    kedro_project: Path, tmp_path: Path, shared_sample_dir: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(shared_sample_dir / "redsm5_posts.csv", bad / "redsm5_posts.csv")
    annotations = pd.read_csv(shared_sample_dir / "redsm5_annotations.csv")
    annotations.loc[0, "DSM5_symptom"] = "INSOMNIA"
    annotations.to_csv(bad / "redsm5_annotations.csv", index=False)
    with pytest.raises(Exception, match="unknown DSM5_symptom value"):
        run_pipeline(
            kedro_project,
            "data_ingest",
            {"data_ingest": {"source": {"kind": "csv", "csv": {"path": str(bad)}}}},
        )
    written = [p for p in (kedro_project / "data").rglob("*") if p.is_file()]
    assert written == []
