"""The experiment's kind, which decides the page MLflow's UI opens it on.

Why: MLflow 3's UI opens an experiment without an ``mlflow.experimentKind`` tag on its GenAI
overview (traces, token usage), where a study's training runs are not shown; with
``custom_model_development`` it opens on "Training runs". kedro-mlflow creates the experiment
with the tag (``create_experiment_kwargs.tags`` in conf/base/mlflow.yml); this module tags an
experiment made before that, or by a worker or ``init_study`` without kedro-mlflow.
"""

from __future__ import annotations

from mlflow.tracking import MlflowClient

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_RUNS = "custom_model_development"


def mark_training_experiment(client: MlflowClient, experiment_id: str) -> None:
    """Tag the experiment as model training, unless it already is (one read, at most one write)."""
    experiment = client.get_experiment(experiment_id)
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != TRAINING_RUNS:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, TRAINING_RUNS)


def get_or_create_training_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created with (or given) the training-runs kind."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: TRAINING_RUNS})
    mark_training_experiment(client, experiment.experiment_id)
    return str(experiment.experiment_id)
