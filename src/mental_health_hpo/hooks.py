"""Project hooks: masking and structured-log context for every kedro command."""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl


class ProjectHooks:
    """Installs log masking/context and MLflow param/tag masking before anything is logged."""

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        from mental_health_hpo.ops.logs import install_project_logging
        from mental_health_hpo.tracking.masking import install_mlflow_masking

        install_project_logging()
        install_mlflow_masking()
