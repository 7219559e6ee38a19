"""The project's KedroSession: ``kedro run --pipeline hpo`` ingests data only when it is missing.

Why: the hpo pipeline includes data_ingest so that it works from a fresh clone, but a study that
is continued (after a kill, or with more trials) should not rebuild its inputs. When every
persisted output of data_ingest already exists, those nodes are left out of the run. Delete
``data/05_model_input/`` or run ``kedro run --pipeline data_ingest`` to rebuild them.
"""

from __future__ import annotations

import logging
from typing import Any

from kedro.framework.project import pipelines
from kedro.framework.session import KedroSession

logger = logging.getLogger(__name__)

#: Pipelines that start with data_ingest and may skip it.
PIPELINES_WITH_INGEST = ("hpo",)


class ProjectSession(KedroSession):
    """A KedroSession that skips data_ingest inside ``hpo`` when its outputs exist."""

    def run(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        names = kwargs.get("pipeline_names") or (
            [kwargs["pipeline_name"]] if kwargs.get("pipeline_name") else []
        )
        filtered = any(
            kwargs.get(key)
            for key in ("node_names", "from_nodes", "to_nodes", "from_inputs", "to_outputs", "tags")
        )
        if not args and not filtered and len(names) == 1 and names[0] in PIPELINES_WITH_INGEST:
            skip = self._existing_ingest_nodes(names[0])
            if skip:
                keep = [n.name for n in pipelines[names[0]].nodes if n.name not in skip]
                logger.info(
                    "data_ingest outputs exist: skipping %s (run `kedro run --pipeline "
                    "data_ingest` to rebuild them)",
                    sorted(skip),
                )
                kwargs["node_names"] = keep
        return super().run(*args, **kwargs)

    def _existing_ingest_nodes(self, name: str) -> set[str]:
        """Names of data_ingest nodes in ``name`` whose persisted outputs all exist."""
        ingest = {n.name for n in pipelines["data_ingest"].nodes}
        catalog = self.load_context().catalog
        outputs = pipelines["data_ingest"].all_outputs()
        if not all(output in catalog and catalog.exists(output) for output in outputs):
            return set()
        return {n.name for n in pipelines[name].nodes if n.name in ingest}
