"""Keep the test split out of training and validation.

Two checks, because a leak can come in two ways: a DataFrame handed to ``train`` that holds test
rows, or training code opening the test file itself. Only the evaluate path reads test; it does
not go through this guard.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from mental_health_hpo.constants import TEST_SPLIT

#: Tokens of a file name, split on the separators used in catalog names (model_input_test.parquet).
_NAME_TOKENS = re.compile(r"[^A-Za-z0-9]+")


class TestSplitAccessError(RuntimeError):
    """Training or validation code tried to see test data."""

    __test__ = False  # not a pytest test class despite the name


def assert_no_test_rows(frame: pd.DataFrame, *, where: str) -> None:
    """Raise when any row of ``frame`` belongs to the test split.

    A frame without a ``split`` column passes: the guard checks the data contract's label, and
    hand-built frames in tests do not carry one.
    """
    if "split" not in frame.columns:
        return
    leaked = frame["split"].astype(str).str.lower() == TEST_SPLIT
    count = int(leaked.sum())
    if count:
        posts = frame.loc[leaked, "post_id"] if "post_id" in frame else pd.Series([], dtype=str)
        ids = posts.astype(str).unique()[:3].tolist()
        raise TestSplitAccessError(
            f"{where}: {count} row(s) from the '{TEST_SPLIT}' split (posts {ids}...); "
            "the test split is read only by the evaluate pipeline"
        )


def is_test_path(path: str | Path) -> bool:
    """True when the file name (not its folders) names the test split, e.g. ``x_test.parquet``.

    Only the last path component is checked: folders like pytest's ``test_foo0`` are no split.
    """
    tokens = {t.lower() for t in _NAME_TOKENS.split(Path(path).name) if t}
    return TEST_SPLIT in tokens


class SplitGuard:
    """The guard the training data path goes through: checks paths before reading, rows after."""

    def __init__(self, where: str = "training") -> None:
        self.where = where

    def check_path(self, path: str | Path) -> Path:
        """Return ``path`` when allowed, raise when its name is the test split."""
        if is_test_path(path):
            raise TestSplitAccessError(
                f"{self.where}: refusing to read '{path}', a test-split file; "
                "only the evaluate pipeline reads the test split"
            )
        return Path(path)

    def check_frame(self, frame: pd.DataFrame, name: str = "data") -> pd.DataFrame:
        """Return ``frame`` when it holds no test rows, raise otherwise."""
        assert_no_test_rows(frame, where=f"{self.where}: {name}")
        return frame

    def check_frames(self, frames: Iterable[tuple[str, pd.DataFrame]]) -> None:
        """Check several named frames at once."""
        for name, frame in frames:
            self.check_frame(frame, name)

    def read_parquet(self, path: str | Path, **kwargs: Any) -> pd.DataFrame:
        """Read a model-input parquet file after checking its path, then check its rows."""
        frame = pd.read_parquet(self.check_path(path), **kwargs)
        return self.check_frame(frame, Path(path).name)


#: The guard of the training and validation code paths.
TRAINING_GUARD = SplitGuard("training")
