"""CleanBarsHooks: log records go around the bars for the length of a pipeline run only."""

from __future__ import annotations

import logging

import pytest

from mental_health_hpo import hooks
from mental_health_hpo.training import progress


@pytest.mark.parametrize("outcome", ["after_pipeline_run", "on_pipeline_error"])
def test_handlers_are_wrapped_during_a_run_and_restored_after(
    monkeypatch: pytest.MonkeyPatch, outcome: str
) -> None:
    monkeypatch.setattr(progress, "is_interactive", lambda: True)
    root = logging.getLogger()
    before = list(root.handlers)
    hook = hooks.CleanBarsHooks()
    hook.before_pipeline_run()
    try:
        assert root.handlers and all(
            isinstance(h, progress._BarSafeHandler) for h in root.handlers[: len(before)]
        )
    finally:
        getattr(hook, outcome)()
    assert root.handlers == before
