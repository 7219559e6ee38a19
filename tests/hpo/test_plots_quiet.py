"""The study plots keep Optuna's caveats about its estimates in the figure, out of the log."""

from __future__ import annotations

import warnings

import optuna

from mental_health_hpo.hpo.results import plots


def _objective(trial: optuna.Trial) -> float:
    loss = trial.suggest_categorical("loss", ["bce", "focal"])
    gamma = trial.suggest_float("gamma", 1.0, 3.0) if loss == "focal" else 0.0
    return trial.suggest_float("lr", 1e-4, 1e-3) * 100 + gamma


def test_a_small_study_with_a_conditional_parameter_plots_without_warnings() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for params in ({"loss": "bce", "lr": 2e-4}, {"loss": "focal", "gamma": 2.0, "lr": 3e-4}):
        study.enqueue_trial(params)
    study.enqueue_trial({"loss": "bce", "lr": 5e-4})
    study.optimize(_objective, n_trials=3)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        history, importances, _parallel = plots(study)
    assert [str(w.message) for w in escaped] == []
    title = importances.layout.title.text
    assert title.startswith("Parameter importances (note: ") and "gamma" in title
    assert history.layout.title.text == "Optimization History Plot"
