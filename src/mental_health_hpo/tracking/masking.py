"""Mask secrets in every MLflow param and tag, whoever writes them (kedro-mlflow included), and in
the "View run ... at: <url>" lines MLflow itself prints.

kedro-mlflow logs node parameters and run tags through the fluent API, which goes through
``MlflowClient``; wrapping the four client methods that write params and tags covers it and the
trial tracker alike. Values are masked by what they look like (``mask_secrets``) and by the name
they are stored under (``mask_named``: ``api_key``, ``*token*``, ``*password*``...).

MLflow prints its run links with ``sys.stdout.write`` in ``TrackingServiceClient._log_url``
(mlflow/tracking/_tracking_service/client.py), built from the tracking URI, so a URI with
``user:password@`` printed the password at every run end; no logging filter sees those lines.
The wrapper captures what ``_log_url`` writes and prints it masked.
"""

from __future__ import annotations

import contextlib
import functools
import io
import sys
from collections.abc import Mapping
from typing import Any

from mlflow.entities import Param, RunTag
from mlflow.tracking import MlflowClient

from mental_health_hpo.mappings import flatten
from mental_health_hpo.ops import mask_named, mask_obj, mask_secrets

MAX_PARAM_LENGTH = 6000

_INSTALLED = False


def _masked(key: str, value: Any) -> str:
    return str(mask_named(key, str(value)))


def install_mlflow_masking() -> None:
    """Idempotent: wrap MlflowClient's param/tag writers and MLflow's run-link printer."""
    global _INSTALLED
    if _INSTALLED:
        return
    _INSTALLED = True
    log_param, set_tag = MlflowClient.log_param, MlflowClient.set_tag
    log_batch, create_run = MlflowClient.log_batch, MlflowClient.create_run

    @functools.wraps(log_param)
    def _log_param(self: MlflowClient, run_id: str, key: str, value: Any, *a: Any, **k: Any) -> Any:
        return log_param(self, run_id, key, _masked(key, value), *a, **k)

    @functools.wraps(set_tag)
    def _set_tag(self: MlflowClient, run_id: str, key: str, value: Any, *a: Any, **k: Any) -> Any:
        return set_tag(self, run_id, key, _masked(key, value), *a, **k)

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
        params = [Param(p.key, _masked(p.key, p.value)) for p in params or ()]
        tags = [RunTag(t.key, _masked(t.key, t.value)) for t in tags or ()]
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
    _mask_run_links()


def _mask_run_links() -> None:
    from mlflow.tracking._tracking_service.client import TrackingServiceClient

    log_url = TrackingServiceClient._log_url

    @functools.wraps(log_url)
    def _log_url(self: Any, run_id: str) -> Any:
        captured = io.StringIO()
        try:
            with contextlib.redirect_stdout(captured):
                return log_url(self, run_id)
        finally:
            if captured.getvalue():
                sys.stdout.write(mask_secrets(captured.getvalue()))

    TrackingServiceClient._log_url = _log_url  # type: ignore[method-assign]


def flatten_params(params: Mapping[str, Any]) -> dict[str, str]:
    """``{"model": {"loss": "bce"}}`` -> ``{"model.loss": "bce"}``: masked strings, MLflow-sized.

    A param named like a secret (``api_key``, ``hub.token``...) is masked whole, whatever its
    value looks like (see ``ops.masking.mask_named``).
    """
    return {k: mask_named(k, str(v))[:MAX_PARAM_LENGTH] for k, v in flatten(params).items()}
