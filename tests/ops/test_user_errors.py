"""A user's input error ends `kedro run` with its message and exit 1, not a rich traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import mental_health_hpo
from mental_health_hpo.data.errors import DatasetSourceError
from mental_health_hpo.ops.user_errors import TRACEBACK_ENV, short_error_hook

PASSWORD = "s3cretPassw0rd"


def test_the_hook_prints_user_errors_short_and_masked_and_defers_the_rest(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[BaseException] = []
    hook = short_error_hook((DatasetSourceError,), lambda kind, error, trace: seen.append(error))
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    try:
        raise DatasetSourceError(f"file /x.csv is empty; mlflow http://u:{PASSWORD}@h. Fix: ...")
    except DatasetSourceError as error:
        hook(DatasetSourceError, error, error.__traceback__)
    err = capsys.readouterr().err
    assert "Error (DatasetSourceError): file /x.csv is empty" in err
    assert PASSWORD not in err and "Traceback" not in err and seen == []
    other = RuntimeError("a bug")
    hook(RuntimeError, other, None)
    assert seen == [other]  # anything else keeps its full traceback
    monkeypatch.setenv(TRACEBACK_ENV, "1")
    user = DatasetSourceError("x")
    hook(DatasetSourceError, user, None)
    assert seen == [other, user]


@pytest.mark.slow
def test_kedro_run_with_an_empty_csv_prints_a_short_message_and_exits_1(
    tmp_path: Path, shared_sample_dir: Path
) -> None:
    from conftest import copy_project

    project = copy_project(tmp_path / "project")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "redsm5_posts.csv").write_bytes(b"")
    (bad / "redsm5_annotations.csv").write_bytes(
        (shared_sample_dir / "redsm5_annotations.csv").read_bytes()
    )
    env = {k: v for k, v in os.environ.items() if k != TRACEBACK_ENV}
    env["COLUMNS"] = "200"
    # The sources under test, whatever the working directory of the child is.
    env["PYTHONPATH"] = os.pathsep.join([str(Path(mental_health_hpo.__file__).parents[1])])
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "kedro"),
            "run",
            "--pipeline",
            "data_ingest",
            "--params",
            f"data_ingest.source.kind=csv,data_ingest.source.csv.path={bad}",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert f"Error (DatasetSourceError): posts file {bad / 'redsm5_posts.csv'}" in done.stderr
    assert "Traceback" not in output and "EmptyDataError" not in output  # no source frames


def test_data_ingest_parameter_errors_are_user_errors() -> None:
    from mental_health_hpo.data import DataConfigError, SourceConfig, SplitConfig
    from mental_health_hpo.pipelines.data_ingest.nodes import split_and_build

    with pytest.raises(DataConfigError, match=r"data_ingest\.source\.kind"):
        SourceConfig.from_params({"kind": "parquet"})
    with pytest.raises(DataConfigError, match=r"data_ingest\.splits ratios"):
        SplitConfig(train=0.9, validation=0.2, test=0.1)
    with pytest.raises(DataConfigError, match=r"data_ingest\.splits: unknown key\(s\) \['tets'\]"):
        split_and_build(None, None, {}, {"splits": {"tets": 0.2}})  # type: ignore[arg-type]
