"""The test split cannot reach training: neither as rows of a frame nor as a file read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mental_health_hpo.training.split_guard import (
    TRAINING_GUARD,
    SplitGuard,
    TestSplitAccessError,
    assert_no_test_rows,
    is_test_path,
)

from .data_helpers import make_model_input


def test_frames_without_test_rows_pass() -> None:
    assert_no_test_rows(make_model_input(2, "train"), where="train_df")
    assert_no_test_rows(make_model_input(2, "validation"), where="validation_df")
    assert_no_test_rows(pd.DataFrame({"text": ["no split column"]}), where="x")


def test_one_test_row_raises_and_names_the_input() -> None:
    frame = pd.concat([make_model_input(2, "train"), make_model_input(1, "test")])
    with pytest.raises(TestSplitAccessError, match="validation_df: 9 row"):
        assert_no_test_rows(frame, where="validation_df")


@pytest.mark.parametrize(
    ("path", "blocked"),
    [
        ("data/05_model_input/model_input_test.parquet", True),
        ("test.parquet", True),
        ("/x/model-input.TEST.csv", True),
        ("data/05_model_input/model_input_train.parquet", False),
        ("data/05_model_input/model_input_validation.parquet", False),
        ("/tmp/pytest-of-me/test_split_guard0/model_input_train.parquet", False),
        ("data/latest.parquet", False),
    ],
)
def test_path_check(path: str, blocked: bool) -> None:
    assert is_test_path(path) is blocked


def test_guard_refuses_to_read_test_file_before_opening_it(tmp_path: Path) -> None:
    missing = tmp_path / "model_input_test.parquet"  # never created: the guard stops first
    with pytest.raises(TestSplitAccessError, match="refusing to read"):
        TRAINING_GUARD.read_parquet(missing)


def test_guard_reads_train_file_and_checks_rows(tmp_path: Path) -> None:
    good = tmp_path / "model_input_train.parquet"
    make_model_input(2, "train").to_parquet(good)
    assert len(TRAINING_GUARD.read_parquet(good)) == 18

    renamed = tmp_path / "model_input_train_copy.parquet"  # test rows under an innocent name
    make_model_input(1, "test").to_parquet(renamed)
    with pytest.raises(TestSplitAccessError):
        SplitGuard("validation").read_parquet(renamed)
