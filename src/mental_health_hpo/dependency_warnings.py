"""Silence the warnings our dependencies raise about their own code, and only those.

No project setting can change them, and left alone they print about seven blocks on every
``kedro`` command, which buries the warnings that matter:

- Kedro's config loader and kedro-mlflow register their OmegaConf resolvers (``globals``,
  ``runtime_params``, ``km.random_name``) with ``register_new_resolver()``, deprecated in
  OmegaConf 2.4;
- kedro-mlflow's ``KedroPipelineModel`` has no type hints on ``predict()``, which MLflow
  reports when the class is defined (this project's ``ReDSM5Model`` has them). MLflow raises
  it inside ``catch_warnings(); simplefilter("once")``, which overrides any ``warnings``
  filter, so it is dropped where Kedro's logging receives it (the ``py.warnings`` logger).

Called twice: as a ``kedro.init`` entry point (pyproject.toml), because kedro-mlflow is
imported with the CLI's plugins before the project's settings; and from ``settings.py``, for
sessions started in Python. Each rule names the message AND the dependency's file or module,
so the same warning raised from project code would still show.
"""

from __future__ import annotations

import logging
import warnings

#: (message fragment, where it is raised): the dependency warnings that are dropped.
DEPENDENCY_WARNINGS = (
    ("register_new_resolver() is deprecated", "kedro/config/omegaconf_config.py"),
    ("register_new_resolver() is deprecated", "kedro_mlflow/"),
    ("Add type hints to the `predict` method", "mlflow/pyfunc/utils/data_validation.py"),
)


class DependencyWarningFilter(logging.Filter):
    """Drops ``py.warnings`` records of the warnings listed in ``DEPENDENCY_WARNINGS``."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(
            message in text and origin in text for message, origin in DEPENDENCY_WARNINGS
        )


def ignore_dependency_warnings() -> None:
    """Install the ``warnings`` filters and the ``py.warnings`` logging filter, once."""
    warnings.filterwarnings(
        "ignore",
        message=r"register_new_resolver\(\) is deprecated",
        category=UserWarning,
        module=r"(kedro\.config|kedro_mlflow)\..*",
    )
    captured = logging.getLogger("py.warnings")
    if not any(isinstance(f, DependencyWarningFilter) for f in captured.filters):
        captured.addFilter(DependencyWarningFilter())
