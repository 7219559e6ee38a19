"""The hpo node: one Optuna study, run inside one Kedro node, tracked in nested MLflow runs.

The node is the Kedro shell around :mod:`mental_health_hpo.hpo`: it wires the catalog inputs,
the ``params:hpo`` group, MLflow (kedro-mlflow's run is the parent of every trial's run) and
study-level retention, then persists the study's results as catalog entries.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
import optuna
import pandas as pd
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from mental_health_hpo.checkpointing import (
    apply_study_retention,
    code_version,
    find_best_checkpoints,
    load_policy,
    read_manifest,
)
from mental_health_hpo.checkpointing.study import finish_trial
from mental_health_hpo.datasets import CheckpointReference
from mental_health_hpo.hpo.objective import TrainingObjective
from mental_health_hpo.hpo.runner import Progress, StudyHooks, run_study
from mental_health_hpo.hpo.search_space import SearchSpace
from mental_health_hpo.hpo.study import StudyConfig, open_study, storage_for_display
from mental_health_hpo.hpo.trial_folder import TrialFolder
from mental_health_hpo.ops import (
    HubAuthGate,
    check_hub_token,
    hub_offline,
    mask_obj,
    mask_secrets,
    needs_hub,
)
from mental_health_hpo.tracking import MetricsBuffer, TrialTracker
from mental_health_hpo.tracking.masking import install_mlflow_masking

logger = logging.getLogger(__name__)

EXPERIMENT_NAME = "mental_health_hpo"
_RUN_STATE = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "FINISHED"}


def _tracker(study_dir: Path) -> TrialTracker:
    """A tracker whose trial runs nest under kedro-mlflow's pipeline run, when there is one."""
    parent = mlflow.active_run()
    client = MlflowClient(mlflow.get_tracking_uri())
    if parent is not None:
        experiment_id = parent.info.experiment_id
    else:
        experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
        experiment_id = (
            experiment.experiment_id if experiment else client.create_experiment(EXPERIMENT_NAME)
        )
    buffer = MetricsBuffer(study_dir / "mlflow_buffer.jsonl")
    return TrialTracker(client, experiment_id, buffer, parent.info.run_id if parent else None)


def run_hpo(
    model_input_train: pd.DataFrame,
    model_input_validation: pd.DataFrame,
    dataset_fingerprint: dict[str, Any],
    hpo: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame, Any, Any, Any, CheckpointReference]:
    """Run (or continue) the study until ``hpo.study.n_trials`` trials have finished.

    Returns the best trial, the trials table, three Optuna plots and the best checkpoint(s) to
    publish as ``best_checkpoint``. The test split is not an
    input of this node: model selection only ever sees validation.
    """
    install_mlflow_masking()
    project_root = Path.cwd()
    config = StudyConfig(**hpo.get("study", {}))
    space = SearchSpace.from_params(hpo.get("search_space", {}))
    base = dict(hpo.get("base", {}))
    checkpointing = dict(hpo.get("checkpointing", {}))
    policy = load_policy(checkpointing.get("policy", "default"), checkpointing.get("overrides"))
    study_dir = config.study_dir(project_root)
    study_dir.mkdir(parents=True, exist_ok=True)
    study = open_study(config, space, project_root)
    metric = str(base.get("trainer", {}).get("optimization_metric", "val_f1_macro"))
    study.set_user_attr("optimization_metric", metric)
    study.set_user_attr("dataset_fingerprint", dataset_fingerprint.get("fingerprint"))

    encoder = str(base.get("model", {}).get("encoder", "packaged:all-minilm-l6-v2"))
    gate = None
    if needs_hub(encoder):
        if not hub_offline():
            check_hub_token()  # FR-032: before any download; raises with the login command
        gate = HubAuthGate(
            recheck_interval_s=float(hpo.get("hub", {}).get("recheck_interval_s", 300))
        )
    tracker = _tracker(study_dir)
    common_tags = {
        "study_id": config.study_id,
        "dataset_fingerprint": str(dataset_fingerprint.get("fingerprint")),
        "code_version": code_version(),
    }
    objective = TrainingObjective(
        train_df=model_input_train,
        validation_df=model_input_validation,
        base=base,
        policy=policy,
        checkpoint_options={
            k: v for k, v in checkpointing.items() if k not in ("policy", "overrides")
        },
        publisher=tracker,
        tags=common_tags,
    )
    bar = tqdm(total=config.n_trials, desc=f"study {config.study_id}", unit="trial")
    bar.update(sum(t.state.is_finished() for t in study.trials))

    def on_trial_end(frozen: FrozenTrial, folder: TrialFolder) -> None:
        _close_trial(tracker, frozen, folder, metric)
        if read_manifest(folder.checkpoints) is not None:
            finish_trial(folder.checkpoints, metric)
        apply_study_retention(study_dir, policy.keep_best_trials, metric)

    def on_progress(progress: Progress) -> None:
        bar.n = progress.finished
        bar.set_postfix_str(f"best={progress.best_value}")
        bar.refresh()
        tracker.set_tags(
            tracker.parent_run_id,
            {
                "hpo.progress": f"{progress.finished}/{progress.n_trials}",
                "hpo.completion": f"{progress.completion:.2f}",
                "hpo.best_value": str(progress.best_value),
                "hpo.best_trial": str(progress.best_trial),
                "hpo.eta_s": "" if progress.eta_s is None else f"{progress.eta_s:.0f}",
            },
        )

    logger.info(
        "Study %s in %s: %d of %d trials finished",
        config.study_id,
        storage_for_display(config.storage),
        sum(t.state.is_finished() for t in study.trials),
        config.n_trials,
    )
    try:
        run_study(
            study,
            config,
            space,
            base,
            objective,
            study_dir,
            StudyHooks(on_trial_end=on_trial_end, on_progress=on_progress),
            auth_gate=gate,
        )
    finally:
        bar.close()
        if not tracker.flush_buffer(attempts=5):
            logger.warning(
                "Metrics remain in %s; they are replayed on the next run", tracker.buffer.path
            )
    return _outputs(study, config, study_dir, metric)


def _close_trial(
    tracker: TrialTracker, frozen: FrozenTrial, folder: TrialFolder, metric: str
) -> None:
    """Publish the trial's whole journal once more (idempotent), tag its state, close its run."""
    record = folder.read()
    run_id = record.get("mlflow_run_id")
    manifest = read_manifest(folder.checkpoints)
    if run_id and manifest is not None:
        tracker.publish(run_id, manifest.history)
    state = frozen.state.name.lower()
    tracker.set_tags(
        run_id,
        {
            "state": state,
            **({"error": frozen.user_attrs["error"]} if "error" in frozen.user_attrs else {}),
        },
    )
    tracker.end(run_id, _RUN_STATE.get(frozen.state, "FAILED"))


def _outputs(
    study: optuna.Study, config: StudyConfig, study_dir: Path, metric: str
) -> tuple[dict[str, Any], pd.DataFrame, Any, Any, Any, CheckpointReference]:
    trials = study.trials_dataframe(
        attrs=(
            "number",
            "value",
            "state",
            "params",
            "user_attrs",
            "datetime_start",
            "datetime_complete",
        )
    )
    trials["trial_id"] = [f"trial_{n:04d}" for n in trials["number"]]
    completed = [t for t in study.trials if t.state is TrialState.COMPLETE]
    best_trial: dict[str, Any] = {
        "study_id": config.study_id,
        "study_name": config.name,
        "study_dir": str(study_dir),
        "storage": storage_for_display(config.storage),
        "optimization_metric": metric,
        "n_trials": len(study.trials),
        "best": None,
    }
    if completed:
        best = study.best_trial
        folder = TrialFolder.of(study_dir, best.number)
        refs = find_best_checkpoints(folder.path, metric)
        best_trial["best"] = {
            "trial_id": folder.trial_id,
            "number": best.number,
            "params": best.params,
            "value": best.value,
            "mlflow_run_id": folder.read().get("mlflow_run_id"),
            "config": folder.read().get("config"),
            "seeds": folder.read().get("seeds"),
            "checkpoint": {
                "trial_dir": str(folder.path),
                "checkpoint_ids": [ref.record.id for ref in refs],
            },
        }
    trials = trials.map(lambda v: mask_secrets(v) if isinstance(v, str) else v)
    chosen = best_trial["best"]
    reference = (
        CheckpointReference(
            Path(chosen["checkpoint"]["trial_dir"]) / "checkpoints",
            chosen["checkpoint"]["checkpoint_ids"],
        )
        if chosen
        else CheckpointReference(study_dir, [])  # no completed trial: nothing to hand over
    )
    return (mask_obj(best_trial), trials, *_plots(study), reference)


def _plots(study: optuna.Study) -> tuple[Any, Any, Any]:
    """Optimization history, parameter importances and parallel coordinates (plotly figures)."""
    import plotly.graph_objects as go
    from optuna import visualization as vis

    def safe(make: Any, title: str) -> Any:
        try:
            return make(study)
        except Exception as error:  # too few completed trials for importances, say
            figure = go.Figure()
            figure.update_layout(title=f"{title}: not available ({error})")
            return figure

    return (
        safe(vis.plot_optimization_history, "Optimization history"),
        safe(vis.plot_param_importances, "Parameter importances"),
        safe(vis.plot_parallel_coordinate, "Parallel coordinates"),
    )
