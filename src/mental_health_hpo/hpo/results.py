"""The study's result, derived from its storage and shared folder once the study is complete.

Why this shape: with many workers, the last worker to exit used to overwrite the outputs with a
partial study's. Now the result exists only for a complete study: the first worker to see it
complete writes ``study_result.json`` into the shared study folder, under the study lock; every
other worker (or a clone that trained nothing, running ``kedro run --pipeline hpo`` on the
finished study) returns the same record, so evaluate works from any clone that reaches the
database and the shared experiments folder. A study with no completed trial has no result: the
node raises, and the catalog's previous best stays in place.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from mental_health_hpo.checkpointing import atomic_write_bytes, find_best_checkpoints
from mental_health_hpo.checkpointing.layout import STUDY_RESULT_NAME, StudyLayout
from mental_health_hpo.checkpointing.layout import trial_id as trial_folder_name
from mental_health_hpo.hpo.coordination import Coordination
from mental_health_hpo.hpo.study import StudyConfig, storage_for_display
from mental_health_hpo.hpo.tally import Tally, best_of
from mental_health_hpo.hpo.trial_folder import TrialFolder
from mental_health_hpo.ops import mask_obj, mask_secrets

RESULT_NAME = STUDY_RESULT_NAME


class NoCompletedTrialError(RuntimeError):
    """A study that ended without a completed trial has no best: say why, exit non-zero."""


class StudyIncompleteError(RuntimeError):
    """This worker stopped while trials still run elsewhere: it writes no final outputs."""


def check_complete(tally: Tally) -> None:
    if not tally.complete:
        raise StudyIncompleteError(
            f"{tally.status()}: this worker wrote no final outputs. The worker that completes "
            "the study writes them; to get them here later, run `kedro run --pipeline hpo` "
            "again once the study is complete (it trains nothing then)."
        )


def study_result(
    study: optuna.Study,
    config: StudyConfig,
    study_dir: Path,
    metric: str,
    coordination: Coordination,
) -> dict[str, Any]:
    """The complete study's best trial, written once into the study folder, under the lock."""
    path = StudyLayout(study_dir).result
    with coordination.lock.hold("study-result"):
        trials = study.get_trials(deepcopy=False)
        if path.exists():
            record = dict(json.loads(path.read_text(encoding="utf-8")))
            if record.get("n_trials") == len(trials):
                return record
        best = best_of(study, trials)
        if best is None:
            raise NoCompletedTrialError(_why_nothing_completed(trials, config))
        folder = TrialFolder.of(study_dir, best.number)
        trial_record = folder.read()
        refs = find_best_checkpoints(folder.path, metric)
        record = mask_obj(
            {
                "study_id": config.study_id,
                "study_name": config.name,
                "study_dir": str(study_dir),
                "storage": storage_for_display(config.storage),
                "optimization_metric": metric,
                "n_trials": len(trials),
                "complete": True,
                "written_by": coordination.worker.owner,
                "best": {
                    "trial_id": folder.trial_id,
                    "number": best.number,
                    "params": best.params,
                    "value": best.value,
                    "end_reason": best.user_attrs.get("end_reason"),
                    "mlflow_run_id": trial_record.get("mlflow_run_id"),
                    "config": trial_record.get("config"),
                    "seeds": trial_record.get("seeds"),
                    "checkpoint": {
                        "trial_dir": str(folder.path),
                        "checkpoint_ids": [ref.record.id for ref in refs],
                    },
                },
            }
        )
        payload = json.dumps(record, indent=2, sort_keys=True, default=str).encode()
        atomic_write_bytes(path, payload)
        study.set_user_attr("result", {"best_trial": best.number, "value": best.value})
        return record


def _why_nothing_completed(trials: list[Any], config: StudyConfig) -> str:
    reasons: dict[str, int] = {}
    for trial in trials:
        reason = str(trial.user_attrs.get("end_reason") or trial.state.name.lower())
        reasons[reason] = reasons.get(reason, 0) + 1
    listed = "; ".join(f"{n} x {r}" for r, n in sorted(reasons.items(), key=lambda x: -x[1]))
    return (
        f"study {config.name!r} ended with no completed trial ({listed or 'no trials'}); the "
        "previous best_checkpoint and hpo_best_trial are left as they were. Fix the cause "
        "above, then continue the study with a larger hpo.study.n_trials or start a new one "
        "with another hpo.study.name."
    )


def trials_table(study: optuna.Study) -> pd.DataFrame:
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
    trials["trial_id"] = [trial_folder_name(int(n)) for n in trials["number"]]
    return trials.map(lambda v: mask_secrets(v) if isinstance(v, str) else v)


def plots(study: optuna.Study) -> tuple[Any, Any, Any]:
    """Optimization history, parameter importances and parallel coordinates (plotly figures)."""
    import plotly.graph_objects as go
    from optuna import visualization as vis

    def safe(make: Any, title: str) -> Any:
        # Optuna's caveats about its own estimate ("Some regimes for parameter ... have less
        # than 2 trials", normal in a small study with a conditional parameter) go into the
        # figure they qualify, not into every study's log.
        with warnings.catch_warnings(record=True) as caveats:
            warnings.simplefilter("always")
            try:
                figure = make(study)
            except Exception as error:  # too few completed trials for importances, say
                figure = go.Figure()
                figure.update_layout(title=f"{title}: not available ({error})")
                return figure
        notes = sorted({" ".join(str(caveat.message).split()) for caveat in caveats})
        if notes:
            figure.update_layout(title=f"{title} (note: {'; '.join(notes)})")
        return figure

    return (
        safe(vis.plot_optimization_history, "Optimization history"),
        safe(vis.plot_param_importances, "Parameter importances"),
        safe(vis.plot_parallel_coordinate, "Parallel coordinates"),
    )


__all__ = [
    "RESULT_NAME",
    "NoCompletedTrialError",
    "StudyIncompleteError",
    "check_complete",
    "plots",
    "study_result",
    "trials_table",
]
