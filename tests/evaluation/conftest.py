"""Fixtures of the evaluation tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .support import FINGERPRINT, fake_baselines, fake_selection


@pytest.fixture
def make_report(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    from mental_health_hpo.evaluation import build_report

    def make(n_checkpoints: int = 1) -> dict[str, Any]:
        selection, evaluations = fake_selection(tmp_path, n_checkpoints)
        report = build_report(selection, evaluations, FINGERPRINT, baselines=fake_baselines())
        return json.loads(json.dumps(report))  # plain JSON types, like a report read back

    return make
