"""Once per deployment, before any worker starts: the shared tables and the MLflow experiment.

    python -m mental_health_hpo.pipelines.hpo.init_study --storage URL --tracking-uri URL

Why: workers that start together race to create Optuna's tables, the lease table and
kedro-mlflow's experiment (its get-or-create is not atomic). Every step here is idempotent.
The URLs hold no password: libpq reads ``PGPASSWORD`` (or ``.pgpass``), MLflow
``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` (or ``MLFLOW_TRACKING_TOKEN``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging

import sqlalchemy as sa
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from optuna.storages import RDBStorage

from mental_health_hpo.hpo.leases import LeaseStore
from mental_health_hpo.hpo.study import storage_for_display
from mental_health_hpo.ops.credentials import password_in_url_warning
from mental_health_hpo.pipelines.hpo.study_tracking import EXPERIMENT_NAME

logger = logging.getLogger(__name__)


def init_shared(storage: str, tracking_uri: str | None) -> None:
    for url, setting, kind in (
        (storage, "--storage", "study storage"),
        (tracking_uri or "", "--tracking-uri", "tracking"),
    ):
        warning = password_in_url_warning(url, setting, kind)
        if warning:
            logger.warning(warning)
    RDBStorage(storage)  # creates (or migrates) Optuna's tables
    LeaseStore(sa.create_engine(storage), "init", 60.0)  # creates the lease table
    print(f"optuna and lease tables ready in {storage_for_display(storage)}")
    if tracking_uri:
        client = MlflowClient(tracking_uri)
        if client.get_experiment_by_name(EXPERIMENT_NAME) is None:
            with contextlib.suppress(MlflowException):  # created meanwhile by another init
                client.create_experiment(EXPERIMENT_NAME)
        print(f"MLflow experiment {EXPERIMENT_NAME!r} ready at {storage_for_display(tracking_uri)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True, help="the study's SQLAlchemy URL")
    parser.add_argument("--tracking-uri", default=None, help="the mlflow server's URL")
    args = parser.parse_args(argv)
    init_shared(args.storage, args.tracking_uri)


if __name__ == "__main__":
    main()
