"""Project hooks: masking and log context for every kedro command, the runner's name in the
run params (and so in the MLflow tags), a study worker's session run owned from its creation,
and what ``kedro run --only-missing-outputs`` must treat as missing."""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline
from mlflow.tracking import MlflowClient

from mental_health_hpo.pipelines.data_ingest.freshness import outdated_reason
from mental_health_hpo.pipelines.data_ingest.pipeline import create_pipeline as data_ingest
from mental_health_hpo.tracking.experiment_kind import mark_training_experiment

logger = logging.getLogger(__name__)

#: Nodes with this tag, or named here, run on every ``--only-missing-outputs`` run: the study
#: node decides by itself what is left to do (top the study up to ``n_trials``, resume a killed
#: trial, or nothing), so existing outputs of an earlier study must not skip it.
ALWAYS_RUN_TAG = "always_run"
STUDY_NODES = ("run_hpo_study",)
ALWAYS_RUN_NODES = STUDY_NODES
FINGERPRINT = "dataset_fingerprint"
INGEST_PARAMETERS = "params:data_ingest"

#: ``str()`` of an object without its own ``__repr__``: ``<module.path.Class object at 0x...>``.
_OBJECT_REPR = re.compile(r"<(?:[\w.]+\.)?(\w+) object at 0x[0-9a-fA-F]+>")
#: The runner Kedro's session uses when it is given none (``runner or SequentialRunner()``).
_DEFAULT_RUNNER = "SequentialRunner"


class ProjectHooks:
    """Installs log masking/context, MLflow masking and short user-error messages first."""

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        from mental_health_hpo.data.errors import (
            DataConfigError,
            DatasetSourceError,
            DataValidationError,
        )
        from mental_health_hpo.ops.credentials import CredentialsConfigError
        from mental_health_hpo.ops.locations import UnsupportedLocationError
        from mental_health_hpo.ops.logs import install_project_logging
        from mental_health_hpo.ops.user_errors import install_short_user_errors
        from mental_health_hpo.tracking.masking import install_mlflow_masking

        install_project_logging()
        install_mlflow_masking()
        # After kedro's logging set up rich's traceback hook, which this one wraps.
        install_short_user_errors(
            (
                DataConfigError,
                DataValidationError,
                DatasetSourceError,
                CredentialsConfigError,
                UnsupportedLocationError,
            )
        )


class CredentialsHooks:
    """The secrets of the study database and of the tracking server, the Kedro way.

    Credentials are not ``params:`` (params are logged to MLflow and shown by kedro-viz), so a
    node never sees them: like kedro-mlflow's ``server.credentials``, this hook reads
    ``credentials.yml`` (``context.config_loader["credentials"]``, ``${oc.env:...}`` resolved)
    as soon as the context exists and exports the ``hpo_study_storage`` entry's libpq variables
    (``PGPASSWORD``...) into the environment, where psycopg's libpq reads them at every
    connection of Optuna's storage, the leases and the locks. The storage URL then holds no
    password. Before a pipeline runs it warns about a tracking URI that carries one.
    """

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        from kedro.config import MissingConfigException

        from mental_health_hpo.ops.credentials import export_driver_variables

        try:
            credentials = context.config_loader["credentials"]
        except MissingConfigException:
            credentials = {}
        exported = export_driver_variables(credentials or {})
        if exported:
            logger.info("driver credentials from credentials.yml: %s", ", ".join(exported))

    @hook_impl
    def before_pipeline_run(self) -> None:
        from mental_health_hpo.ops.credentials import password_in_url_warning

        warning = password_in_url_warning(
            mlflow.get_tracking_uri(), "the MLflow tracking URI (mlflow.yml)", "tracking"
        )
        if warning:
            logger.warning(warning)


class RunnerNameHooks:
    """The runner's class name as the MLflow ``runner`` tag, in place of its object repr.

    Why: Kedro's session records ``getattr(runner, "__name__", str(runner))``; the runner
    instance ``kedro run`` passes has no ``__name__``, so the value is its object repr, and
    kedro-mlflow's ``before_pipeline_run`` sets every truthy run param as a tag of the
    pipeline's run: ``runner: <kedro.runner.sequential_runner.SequentialRunner object at
    0x7f...>``, a different value every run, for every pipeline. A session given no runner
    records ``"None"`` and runs ``SequentialRunner``.

    The run params themselves are left alone: kedro-viz's workflow tracking recognises a
    sequential run by exactly that repr (``hooks_utils.is_sequential_runner``), and rewriting
    the shared dict made it warn and stop recording. So this hook runs after every other
    ``before_pipeline_run`` (``trylast``: kedro-mlflow has started the run and set its tags by
    then) and overwrites the one tag; MLflow's ``set_tag`` replaces a key's value.
    """

    @hook_impl(trylast=True)
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        if mlflow.active_run() is None:
            return
        try:
            mlflow.set_tag("runner", str(runner_name(run_params.get("runner"))))
        except Exception as error:  # a cosmetic tag must never stop a pipeline from running
            logger.warning("could not replace the MLflow 'runner' tag: %s", error)


class ExperimentKindHooks:
    """Tags an experiment kedro-mlflow found already made as training runs (see
    ``tracking/experiment_kind.py``): kedro-mlflow applies ``create_experiment_kwargs.tags`` only
    when it creates one, and MLflow's UI opens an untagged experiment on its GenAI overview."""

    @hook_impl(trylast=True)
    def before_pipeline_run(self) -> None:
        run = mlflow.active_run()
        if run is None:
            return
        try:
            mark_training_experiment(MlflowClient(), run.info.experiment_id)
        except Exception as error:  # a UI hint must never stop a pipeline from running
            logger.warning("could not tag the MLflow experiment's kind: %s", error)


def runner_name(recorded: object) -> object:
    """The class name for a recorded object repr (or for no runner); anything else as it is."""
    if recorded is None or recorded == "None":
        return _DEFAULT_RUNNER
    if isinstance(recorded, str):
        match = _OBJECT_REPR.fullmatch(recorded)
        if match:
            return match.group(1)
    return recorded


class SessionRunHooks:
    """A study worker's kedro-mlflow session run exists only with its study and owner tags.

    Why: kedro-mlflow creates the session run in its ``before_pipeline_run`` and the study
    tagged it only once the worker held its lease, seconds later (data ingest, imports, the
    study's opening). A worker SIGKILLed in between left a run the sweep of abandoned runs
    (tracking/abandoned.py) could not recognise: RUNNING forever. So when the pipeline runs the
    study node, this hook creates the run first, tagged in the same call
    (``tracking.create_owned_run``), and hands its id to kedro-mlflow's configuration
    (``tracking.run.id``, the option kedro-mlflow reads to resume a run instead of creating
    one); kedro-mlflow then starts it as its own. Nothing changes when tracking is off for the
    pipeline, when a run was active before the session (an orchestrator's), when mlflow.yml
    names a run id, or when the pipeline has no study node.
    """

    def __init__(self) -> None:
        self._config: Any = None
        self._given_id = False

    @hook_impl(trylast=True)  # after kedro-mlflow's, which stores its config as context.mlflow
    def after_context_created(self, context: Any) -> None:
        self._config = getattr(context, "mlflow", None)

    @hook_impl(tryfirst=True)  # before kedro-mlflow's, which starts the run
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog
    ) -> None:
        config = self._config
        if config is None or config.tracking.run.id or mlflow.active_run() is not None:
            return
        if not any(node.name in STUDY_NODES for node in pipeline.nodes):
            return
        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name")]
        names = [str(name or "__default__") for name in names]
        if all(name in config.tracking.disable_tracking.pipelines for name in names):
            return
        study_name = _study_name(catalog)
        if study_name is None:
            return  # the study node reports what is wrong with params:hpo
        from mental_health_hpo.tracking import create_owned_run

        run_name = config.tracking.run.name or "+".join(names)
        try:  # kedro-mlflow's setup set the tracking URI and created the experiment
            experiment = mlflow.get_experiment_by_name(config.tracking.experiment.name)
            if experiment is None:
                return
            client = mlflow.MlflowClient()
            run_id = create_owned_run(client, experiment.experiment_id, run_name, study_name)
        except Exception as error:  # kedro-mlflow creates its own run, and says what fails
            logger.warning("could not create the study's session run: %s", error)
            return
        config.tracking.run.id = run_id
        self._given_id = True

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._forget_run()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._forget_run()

    def _forget_run(self) -> None:
        """The session's context keeps the configuration: no later run may resume this one."""
        if self._given_id:
            self._config.tracking.run.id = None
            self._given_id = False


def _study_name(catalog: DataCatalog) -> str | None:
    from mental_health_hpo.hpo.study import StudyConfig

    try:
        hpo = catalog.load("params:hpo") if "params:hpo" in catalog else {}
        return StudyConfig(**dict(hpo.get("study") or {})).name
    except (TypeError, ValueError, AttributeError):
        return None


class CleanBarsHooks:
    """While a pipeline runs on a terminal, log records are drawn above the progress bars
    (``training.progress.clean_bars``) instead of through them; off a terminal, nothing."""

    def __init__(self) -> None:
        self._active = contextlib.ExitStack()

    @hook_impl
    def before_pipeline_run(self) -> None:
        from mental_health_hpo.training.progress import clean_bars

        self._active.enter_context(clean_bars())

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._active.close()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._active.close()


class FreshnessHooks:
    """Marks outputs that exist but are out of date, so that Kedro's own missing-output filter
    re-runs their nodes.

    - data_ingest's outputs, when ``dataset_fingerprint`` records other ``data_ingest``
      parameters than this run's (``--params data_ingest.source...`` on a later run);
    - the outputs of nodes tagged ``always_run`` or named in ``ALWAYS_RUN_NODES`` (the study).
    Without ``--only-missing-outputs`` Kedro runs every node anyway, and nothing is marked.
    """

    @hook_impl
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: DataCatalog
    ) -> None:
        if not run_params.get("only_missing_outputs"):
            return
        outdated: dict[str, str] = {}
        ingest_reason = self._ingest_outdated(pipeline, catalog)
        if ingest_reason:
            logger.warning("%s: ingesting again", ingest_reason)
            ingest_names = {n.name for n in data_ingest().nodes}
            for node in pipeline.nodes:
                if node.name in ingest_names:
                    outdated.update(dict.fromkeys(node.outputs, ingest_reason))
        for node in pipeline.nodes:
            if ALWAYS_RUN_TAG in node.tags or node.name in ALWAYS_RUN_NODES:
                reason = f"node {node.name} runs on every run"
                outdated.update({name: reason for name in node.outputs if name not in outdated})
        from mental_health_hpo.datasets import OutdatedDataset  # torch: only when a run starts

        replacing = logging.getLogger("kedro.io.data_catalog")
        previous = replacing.level
        replacing.setLevel(logging.ERROR)  # its "Replacing dataset" warning: intended here
        try:
            for name, reason in outdated.items():
                dataset = catalog.get(name)
                if dataset is not None and not isinstance(dataset, OutdatedDataset):
                    catalog[name] = OutdatedDataset(dataset, reason)
        finally:
            replacing.setLevel(previous)

    @staticmethod
    def _ingest_outdated(pipeline: Pipeline, catalog: DataCatalog) -> str | None:
        """Why the ingested data is out of date for this run (None: current, or not run here)."""
        if FINGERPRINT not in pipeline.all_outputs() or not catalog.exists(FINGERPRINT):
            return None
        current = catalog.load(INGEST_PARAMETERS) if INGEST_PARAMETERS in catalog else {}
        return outdated_reason(catalog.load(FINGERPRINT), current)
