"""Servers shared by the distributed tests (started once per module, always stopped)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers import postgres_cluster


@pytest.fixture(scope="module")
def postgres_base() -> Iterator[str]:
    """``postgresql+psycopg://postgres@127.0.0.1:<port>`` with databases optuna and race."""
    with postgres_cluster("optuna", "race") as base:
        yield base
