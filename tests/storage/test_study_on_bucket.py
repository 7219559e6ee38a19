"""A bucket study refuses a study database whose locks hold on one host only.

The whole study on a bucket (train, publish, evaluate from the bucket, two clones, one killed)
is ``tests/distributed/test_bucket_clones.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mental_health_hpo.hpo.coordination import UnsafeCoordinationError, coordination_for
from mental_health_hpo.hpo.study import StudyConfig


@pytest.mark.parametrize("storage", ["sqlite:///experiments/optuna.db", "journal:///x.log"])
def test_a_bucket_study_refuses_a_study_database_with_one_host_locks(
    storage: str, tmp_path: Path
) -> None:
    config = StudyConfig(storage=storage, experiments_dir="s3://hpo/experiments")
    with pytest.raises(UnsafeCoordinationError, match=r"PostgreSQL.*hpo\.study\.storage="):
        coordination_for(config, tmp_path)
    assert not list(tmp_path.iterdir()), "something was written before the refusal"
