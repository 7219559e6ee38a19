"""Optuna's plots share one offline plotly.min.js per folder, locally and in MLflow."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import pytest
from kedro.io.core import DatasetError
from plotly.offline import get_plotlyjs

from mental_health_hpo.datasets import PlotlyHTMLDataset


def _figure(y: list[int]) -> go.Figure:
    return go.Figure(go.Scatter(y=y))


def test_pages_share_one_bundle_and_stay_small(tmp_path: Path) -> None:
    for name in ("history", "importances"):
        PlotlyHTMLDataset(filepath=tmp_path / f"hpo_{name}.html").save(_figure([1, 2, 3]))
    pages = sorted(tmp_path.glob("*.html"))
    assert [p.name for p in pages] == ["hpo_history.html", "hpo_importances.html"]
    assert all(p.stat().st_size < 100_000 for p in pages)
    for page in pages:
        html = page.read_text()
        assert '<script charset="utf-8" src="plotly.min.js"></script>' in html
        assert "cdn.plot.ly" not in html  # offline: nothing is fetched from the internet
    bundle = tmp_path / "plotly.min.js"
    assert bundle.read_text(encoding="utf-8") == get_plotlyjs()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "hpo_history.html",
        "hpo_importances.html",
        "plotly.min.js",
    ]


def test_a_stale_bundle_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "plotly.min.js").write_text("/* plotly.js of another version */")
    dataset = PlotlyHTMLDataset(filepath=tmp_path / "plot.html")
    assert not PlotlyHTMLDataset(filepath=tmp_path / "plot.html").exists()
    dataset.save(_figure([1]))
    assert (tmp_path / "plotly.min.js").read_text(encoding="utf-8") == get_plotlyjs()
    assert dataset.exists() and "plotly.min.js" in dataset.load()


def test_save_args_cannot_re_embed_plotlyjs(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="include_plotlyjs"):
        PlotlyHTMLDataset(filepath=tmp_path / "p.html", save_args={"include_plotlyjs": True})


def test_mlflow_gets_the_pages_and_the_bundle_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    # The environment, not mlflow.set_tracking_uri/set_experiment: those set process globals
    # that outlive the test (set_tracking_uri("") afterwards means the ./mlruns file store, which
    # MLflow 3.17 refuses), and broke the next test in the same worker process.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = mlflow.MlflowClient().create_experiment("plots")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        for name in ("a", "b"):
            PlotlyHTMLDataset(
                filepath=tmp_path / "out" / f"{name}.html", mlflow_artifact_path="hpo_plots"
            ).save(_figure([1, 2]))
    client = mlflow.MlflowClient()
    logged = sorted(Path(a.path).name for a in client.list_artifacts(run.info.run_id, "hpo_plots"))
    assert logged == ["a.html", "b.html", "plotly.min.js"]
