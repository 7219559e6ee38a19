"""``PlotlyHTMLDataset``: Plotly figures as HTML pages that share one plotly.js per folder.

Why: a self-contained Plotly page embeds plotly.js, about 4.5 MB, so a study's three Optuna plots
weighed 13.7 MB on disk and as much again in MLflow. Here each page references
``plotly.min.js`` beside it (``include_plotlyjs="directory"``), and the folder holds one copy of
the bundle, written from the installed plotly, so the pages open offline and never load a
different plotly.js than the one that drew them. With ``mlflow_artifact_path`` the page is also
logged to the active MLflow run, with the bundle once per run in the same artifact folder:
download the folder to view the plots (MLflow's preview pane does not load side files).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import plotly.graph_objects as go
from kedro.io.core import AbstractDataset, DatasetError
from plotly.offline import get_plotlyjs

BUNDLE_NAME = "plotly.min.js"


def write_bundle(folder: Path) -> Path:
    """``folder/plotly.min.js`` from the installed plotly, rewritten only when it differs."""
    bundle = folder / BUNDLE_NAME
    content = get_plotlyjs().encode("utf-8")
    if (
        bundle.is_file()
        and bundle.stat().st_size == len(content)
        and bundle.read_bytes() == content
    ):
        return bundle
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{BUNDLE_NAME}.", suffix=".tmp")
    with os.fdopen(handle, "wb") as out:
        out.write(content)
    Path(temporary).replace(bundle)  # atomic: a page never sees half a bundle
    return bundle


class PlotlyHTMLDataset(AbstractDataset[go.Figure, str]):
    """Saves a Plotly figure as an HTML page next to one shared ``plotly.min.js``.

    Examples:
        Using the YAML API:

        ```yaml
        "hpo_{plot}":
          type: mental_health_hpo.datasets.PlotlyHTMLDataset
          filepath: data/08_reporting/hpo_{plot}.html
          mlflow_artifact_path: hpo_plots
        ```

        Using the Python API:

        >>> import plotly.graph_objects as go
        >>> from mental_health_hpo.datasets import PlotlyHTMLDataset
        >>> dataset = PlotlyHTMLDataset(filepath=tmp_path / "plot.html")
        >>> dataset.save(go.Figure(go.Scatter(y=[1, 2])))
        >>> assert 'src="plotly.min.js"' in dataset.load()
    """

    DEFAULT_SAVE_ARGS: ClassVar[dict[str, Any]] = {}
    _bundle_logged: ClassVar[set[tuple[str, str]]] = set()  # (run id, artifact path)

    def __init__(
        self,
        *,
        filepath: str | Path,
        save_args: dict[str, Any] | None = None,
        mlflow_artifact_path: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Creates a new instance of ``PlotlyHTMLDataset``.

        Args:
            filepath: The HTML page; ``plotly.min.js`` goes into its folder.
            save_args: Options of ``plotly.io.write_html`` except ``include_plotlyjs`` and
                ``full_html``, which this dataset sets.
            mlflow_artifact_path: Also log the page (and the bundle, once per run) to the
                active MLflow run under this artifact folder; None: local only.
            metadata: Any arbitrary metadata; ignored by Kedro, used by plugins.
        """
        self._filepath = PurePosixPath(Path(filepath).as_posix())
        save_args = {**self.DEFAULT_SAVE_ARGS, **(save_args or {})}
        fixed = {"include_plotlyjs", "full_html"} & set(save_args)
        if fixed:
            raise DatasetError(
                f"PlotlyHTMLDataset sets {sorted(fixed)} itself (one shared plotly.min.js per "
                f"folder); remove them from save_args of {filepath}"
            )
        self._save_args = save_args
        self._mlflow_artifact_path = mlflow_artifact_path
        self.metadata = metadata

    @property
    def _path(self) -> Path:
        return Path(str(self._filepath))

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": self._filepath,
            "save_args": self._save_args,
            "mlflow_artifact_path": self._mlflow_artifact_path,
        }

    def load(self) -> str:
        """The saved page as text (for tests and notebooks; the plots are for people)."""
        try:
            return self._path.read_text(encoding="utf-8")
        except FileNotFoundError as error:
            raise DatasetError(
                f"no plot at {self._path}: run the pipeline that draws it"
            ) from error

    def save(self, data: go.Figure) -> None:
        bundle = write_bundle(self._path.parent)
        html = data.to_html(include_plotlyjs="directory", full_html=True, **self._save_args)
        temporary = self._path.with_name(f".{self._path.name}.tmp")
        temporary.write_text(html, encoding="utf-8")
        temporary.replace(self._path)
        if self._mlflow_artifact_path is not None:
            self._log_to_mlflow(bundle)

    def _log_to_mlflow(self, bundle: Path) -> None:
        import mlflow

        run = mlflow.active_run()
        if run is None:
            return
        mlflow.log_artifact(str(self._path), self._mlflow_artifact_path)
        key = (run.info.run_id, str(self._mlflow_artifact_path))
        if key not in self._bundle_logged:
            mlflow.log_artifact(str(bundle), self._mlflow_artifact_path)
            self._bundle_logged.add(key)

    def _exists(self) -> bool:
        return self._path.is_file() and (self._path.parent / BUNDLE_NAME).is_file()
