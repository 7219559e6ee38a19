"""Mask secrets in every MLflow param and tag, whoever writes them (kedro-mlflow included).

kedro-mlflow logs node parameters and run tags through the fluent API, which goes through
``MlflowClient``; wrapping the four client methods that write params and tags covers it and the
trial tracker alike.
"""

from __future__ import annotations

import functools
from typing import Any

from mlflow.entities import Param, RunTag
from mlflow.tracking import MlflowClient

from mental_health_hpo.ops import mask_obj, mask_secrets

_INSTALLED = False


def install_mlflow_masking() -> None:
    """Idempotent: wrap MlflowClient.log_param/set_tag/log_batch/create_run with masking."""
    global _INSTALLED
    if _INSTALLED:
        return
    _INSTALLED = True
    log_param, set_tag = MlflowClient.log_param, MlflowClient.set_tag
    log_batch, create_run = MlflowClient.log_batch, MlflowClient.create_run

    @functools.wraps(log_param)
    def _log_param(self: MlflowClient, run_id: str, key: str, value: Any, *a: Any, **k: Any) -> Any:
        return log_param(self, run_id, key, mask_secrets(str(value)), *a, **k)

    @functools.wraps(set_tag)
    def _set_tag(self: MlflowClient, run_id: str, key: str, value: Any, *a: Any, **k: Any) -> Any:
        return set_tag(self, run_id, key, mask_secrets(str(value)), *a, **k)

    @functools.wraps(log_batch)
    def _log_batch(
        self: MlflowClient,
        run_id: str,
        metrics: Any = (),
        params: Any = (),
        tags: Any = (),
        *a: Any,
        **k: Any,
    ) -> Any:
        params = [Param(p.key, mask_secrets(str(p.value))) for p in params or ()]
        tags = [RunTag(t.key, mask_secrets(str(t.value))) for t in tags or ()]
        return log_batch(self, run_id, metrics, params, tags, *a, **k)

    @functools.wraps(create_run)
    def _create_run(
        self: MlflowClient,
        experiment_id: str,
        start_time: int | None = None,
        tags: dict[str, Any] | None = None,
        run_name: str | None = None,
    ) -> Any:
        masked = mask_obj(dict(tags)) if tags else tags
        return create_run(self, experiment_id, start_time, masked, run_name)

    MlflowClient.log_param = _log_param  # type: ignore[method-assign]
    MlflowClient.set_tag = _set_tag  # type: ignore[method-assign]
    MlflowClient.log_batch = _log_batch  # type: ignore[method-assign]
    MlflowClient.create_run = _create_run  # type: ignore[method-assign]
