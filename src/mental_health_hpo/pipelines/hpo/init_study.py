"""Once per deployment, before any worker starts: the shared tables and the MLflow experiment.

    python -m mental_health_hpo.pipelines.hpo.init_study --storage URL --tracking-uri URL

Why: workers that start together race to create Optuna's tables, the lease table and
kedro-mlflow's experiment (its get-or-create is not atomic). Every step here is idempotent.
The URLs hold no password: libpq reads ``PGPASSWORD`` (or ``.pgpass``), MLflow
``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` (or ``MLFLOW_TRACKING_TOKEN``).
"""

from __future__ import annotations

import argparse
import logging

from mental_health_hpo.hpo.setup import prepare_storage
from mental_health_hpo.hpo.study import storage_for_display
from mental_health_hpo.ops.credentials import password_in_url_warning
from mental_health_hpo.tracking.study_tracking import EXPERIMENT_NAME, ensure_experiment

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True, help="the study's SQLAlchemy URL")
    parser.add_argument("--tracking-uri", default=None, help="the mlflow server's URL")
    args = parser.parse_args(argv)
    for url, setting, kind in (
        (args.storage, "--storage", "study storage"),
        (args.tracking_uri or "", "--tracking-uri", "tracking"),
    ):
        warning = password_in_url_warning(url, setting, kind)
        if warning:
            logger.warning(warning)
    prepare_storage(args.storage)
    print(f"optuna and lease tables ready in {storage_for_display(args.storage)}")
    if args.tracking_uri:
        ensure_experiment(args.tracking_uri)
        uri = storage_for_display(args.tracking_uri)
        print(f"MLflow experiment {EXPERIMENT_NAME!r} ready at {uri}")


if __name__ == "__main__":
    main()
