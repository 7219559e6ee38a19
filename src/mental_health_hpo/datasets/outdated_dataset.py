"""``OutdatedDataset``: a catalog entry whose stored data is known to be out of date.

Why: ``kedro run --only-missing-outputs`` re-runs a node only when one of its persisted outputs
does not exist (``kedro.runner.runner._should_node_run``). Data written from other parameters
does exist, so Kedro would keep it. Wrapping such an entry makes it report "missing" until the
node writes it again; loading and saving go to the wrapped dataset unchanged.
"""

from __future__ import annotations

from typing import Any

from kedro.io.core import AbstractDataset


class OutdatedDataset(AbstractDataset[Any, Any]):
    """Delegates to ``dataset``; ``exists()`` is False until the first save in this run."""

    def __init__(self, dataset: AbstractDataset[Any, Any], reason: str) -> None:
        self.wrapped = dataset
        self.reason = reason
        self._saved = False
        self.metadata = getattr(dataset, "metadata", None)

    def load(self) -> Any:
        return self.wrapped.load()

    def save(self, data: Any) -> None:
        self.wrapped.save(data)
        self._saved = True

    def _exists(self) -> bool:
        return self._saved and self.wrapped.exists()

    def _describe(self) -> dict[str, Any]:
        return {"wrapped": str(self.wrapped), "reason": self.reason}

    def _release(self) -> None:
        self.wrapped.release()
