"""``kedro run --only-missing-outputs``: data_ingest is kept while its parameters are unchanged,
built again when they change, and the study node always runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mental_health_hpo.pipelines.data_ingest.freshness import changed_parameters, outdated_reason

FINGERPRINT = "data/05_model_input/dataset_fingerprint.json"
TRAIN = "data/05_model_input/model_input_train.parquet"


def test_changed_parameters_names_each_changed_key() -> None:
    old = {"source": {"kind": "synthetic", "synthetic": {"n_posts": 300, "sizes": (2, 4)}}}
    new = {"source": {"kind": "synthetic", "synthetic": {"n_posts": 600, "sizes": [2, 4]}}}
    assert changed_parameters(old, new) == ["source.synthetic.n_posts: 300 -> 600"]
    assert changed_parameters(new, new) == []
    assert changed_parameters({"a": 1}, {"b": 2}) == ["a: 1 -> '<unset>'", "b: '<unset>' -> 2"]


def test_outdated_reason() -> None:
    params = {"splits": {"seed": 1}}
    assert outdated_reason(None, params) is None
    assert outdated_reason({"parameters": params}, params) is None
    assert "older ingest" in str(outdated_reason({"fingerprint": "x"}, params))
    reason = outdated_reason({"parameters": params}, {"splits": {"seed": 2}})
    assert reason is not None and "splits.seed: 1 -> 2" in reason


def _run(project: Path, pipeline: str, params: dict[str, Any]) -> None:
    """``kedro run --pipelines <pipeline> --only-missing-outputs --params ...``, in process."""
    import mlflow
    from kedro.framework.session import KedroSession

    try:
        with KedroSession.create(project_path=project, runtime_params=params) as session:
            session.run(pipeline_names=[pipeline], only_missing_outputs=True)
    finally:
        while mlflow.active_run():
            mlflow.end_run()


def _posts(project: Path) -> int:
    return int(json.loads((project / FINGERPRINT).read_text())["rows"]["posts"])


@pytest.mark.slow
def test_data_ingest_is_kept_until_its_parameters_change(kedro_project: Path) -> None:
    params = {"data_ingest": {"source": {"synthetic": {"n_posts": 40}}}}
    _run(kedro_project, "data_ingest", params)
    assert _posts(kedro_project) == 40
    written = (kedro_project / TRAIN).stat().st_mtime_ns

    _run(kedro_project, "data_ingest", params)
    assert (kedro_project / TRAIN).stat().st_mtime_ns == written, "unchanged data was rebuilt"

    _run(kedro_project, "data_ingest", {"data_ingest": {"source": {"synthetic": {"n_posts": 30}}}})
    assert _posts(kedro_project) == 30
    assert (kedro_project / TRAIN).stat().st_mtime_ns != written


@pytest.mark.slow
def test_hpo_on_new_data_ingest_params_ingests_again(
    kedro_project: Path, tiny_model_dir: Path
) -> None:
    def params(n_posts: int, n_trials: int, study: str) -> dict[str, Any]:
        return {
            "data_ingest": {"source": {"synthetic": {"n_posts": n_posts}}},
            "hpo": {
                "study": {"n_trials": n_trials, "pruner": "none", "name": study},
                "base": {
                    "model": {"encoder": str(tiny_model_dir)},
                    "trainer": {"epochs": 1, "batch_size": 8},
                },
            },
        }

    _run(kedro_project, "hpo", params(40, 1, "fresh"))
    assert _posts(kedro_project) == 40
    # New data is a new study (a study refuses to mix datasets): it must not reuse the old data.
    _run(kedro_project, "hpo", params(30, 1, "fresh30"))
    assert _posts(kedro_project) == 30, "the study trained on data of the old parameters"
    _run(kedro_project, "hpo", params(30, 2, "fresh30"))
    trials = sorted((kedro_project / "experiments" / "study_fresh30").glob("trial_*"))
    assert len(trials) == 2, "the study node was skipped although the study was not complete"
