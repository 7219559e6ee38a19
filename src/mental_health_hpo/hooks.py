"""Project hooks: masking and structured-log context for every kedro command."""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl


class ProjectHooks:
    """Installs log masking/context, MLflow masking and short user-error messages first."""

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        from mental_health_hpo.data.errors import (
            DataConfigError,
            DatasetSourceError,
            DataValidationError,
        )
        from mental_health_hpo.ops.logs import install_project_logging
        from mental_health_hpo.ops.user_errors import install_short_user_errors
        from mental_health_hpo.tracking.masking import install_mlflow_masking

        install_project_logging()
        install_mlflow_masking()
        # After kedro's logging set up rich's traceback hook, which this one wraps.
        install_short_user_errors((DataConfigError, DataValidationError, DatasetSourceError))
