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
import logging
import time
import warnings
from typing import Any

import optuna
import pandas as pd

from mental_health_hpo.checkpointing import CheckpointRef, StudyRetention
from mental_health_hpo.hpo.coordination import Coordination
from mental_health_hpo.hpo.study import StudyConfig, storage_for_display
from mental_health_hpo.hpo.tally import FINISHED, Tally, best_of
from mental_health_hpo.ops import mask_obj, mask_secrets
from mental_health_hpo.ops.locations import Location, as_location
from mental_health_hpo.workspace import Storage, storage_at
from mental_health_hpo.workspace.layout import STUDY_RESULT_NAME, TRIAL_RECORD_NAME, StudyLayout
from mental_health_hpo.workspace.layout import trial_id as trial_folder_name

RESULT_NAME = STUDY_RESULT_NAME

logger = logging.getLogger(__name__)


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
    study_dir: Location,
    metric: str,
    coordination: Coordination,
    retention: StudyRetention,
) -> dict[str, Any]:
    """The complete study's best trial, written once into the study folder, under the lock.

    Derived only once every finished trial has been finished: the workers still finishing one
    (holding its lease) are waited for, then, under the study lock, every finished trial is
    finished here (idempotent: :meth:`StudyRetention.reconcile`), so the checkpoints the
    result names are exactly the ones finishing keeps (one rule:
    :func:`~mental_health_hpo.checkpointing.best_of_trial`). A result written before that
    rule held, or naming a checkpoint that is gone, is derived again, never failed on forever.
    """
    layout = StudyLayout(study_dir)
    storage = storage_at(study_dir)
    _wait_for_finishing(study, coordination, config.lease_s)
    with coordination.lock.hold("study-result"):
        trials = study.get_trials(deepcopy=False)
        retention.reconcile(layout.trial(t.number).path for t in trials if t.state in FINISHED)
        try:
            record = dict(json.loads(storage.read(STUDY_RESULT_NAME).decode("utf-8")))
        except FileNotFoundError:
            record = {}
        if record.get("n_trials") == len(trials) and _names_the_best(record, metric):
            return record
        best = best_of(study, trials)
        if best is None:
            raise NoCompletedTrialError(_why_nothing_completed(trials, config))
        folder = layout.trial(best.number)
        trial_record = _trial_record(storage, folder.trial_id)
        refs = CheckpointRef.best(folder.path, metric)
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
        storage.put(STUDY_RESULT_NAME, payload)
        study.set_user_attr("result", {"best_trial": best.number, "value": best.value})
        return record


def _trial_record(storage: Storage, trial_id: str) -> dict[str, Any]:
    try:
        return dict(json.loads(storage.read(f"{trial_id}/{TRIAL_RECORD_NAME}").decode("utf-8")))
    except FileNotFoundError:
        return {}


def _names_the_best(record: dict[str, Any], metric: str) -> bool:
    """True when a written result names exactly what the one rule calls its trial's best now.

    False for a result derived before its trial was finished (it may name a tie that
    finishing dropped) or naming a checkpoint gone since: the caller derives it again.
    """
    checkpoint = record.get("best", {}).get("checkpoint", {})
    named = list(checkpoint.get("checkpoint_ids") or [])
    trial_dir = checkpoint.get("trial_dir")
    if not trial_dir:
        return False
    kept = [ref.record.id for ref in CheckpointRef.best(as_location(trial_dir), metric)]
    if named == kept:
        return True
    logger.warning(
        "study_result.json names checkpoint(s) %s of %s, but its best checkpoint(s) are %s now: "
        "deriving the study result again from the manifests",
        named,
        trial_dir,
        kept,
    )
    return False


def _wait_for_finishing(study: optuna.Study, coordination: Coordination, lease_s: float) -> None:
    """Wait while live workers hold the lease of a finished trial (they are finishing it).

    Bounded: past a few lease periods this worker goes on and finishes those trials itself
    (finishing is idempotent), so a stuck worker never blocks the result. A dead holder's
    lease is not waited for at all.
    """
    leases, worker = coordination.leases, coordination.worker
    deadline = time.monotonic() + max(30.0, 4 * lease_s)
    told = False
    while True:
        finished = {t.number for t in study.get_trials(deepcopy=False, states=FINISHED)}
        busy = sorted(
            int(row.resource.split(":", 1)[1])
            for row in leases.live("trial:")
            if not row.dead_on(worker.host) and int(row.resource.split(":", 1)[1]) in finished
        )
        if not busy:
            return
        if time.monotonic() > deadline:
            logger.warning("Trial(s) %s still being finished; finishing them here", busy)
            return
        if not told:
            logger.info("Waiting for trial(s) %s to be finished by their worker(s)", busy)
            told = True
        time.sleep(min(0.5, lease_s / 4))


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
