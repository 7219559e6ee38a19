"""A URL is never a local path: ``experiments_dir`` given as a URL of a scheme the project does
not serve is refused, through a real ``kedro run``, before anything is written; it never becomes
a folder named after the URL (``ftp:``, ``s3:``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mental_health_hpo.ops.locations import (
    ObjectStoreUrl,
    UnsupportedLocationError,
    local_folder,
    parse_location,
)

KEDRO = Path(sys.executable).parent / "kedro"


def _kedro_run(project: Path, pipeline: str, params: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KEDRO), "run", "--pipeline", pipeline, "--params", params],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("experiments", Path("experiments")),
        ("/mnt/shared/experiments", Path("/mnt/shared/experiments")),
        ("file:///mnt/shared/experiments", Path("/mnt/shared/experiments")),
        ("s3://hpo/experiments", ObjectStoreUrl("s3", "hpo", "experiments")),
        ("s3://hpo/", ObjectStoreUrl("s3", "hpo", "")),
        ("s3://bucket/a/b/", ObjectStoreUrl("s3", "bucket", "a/b")),
    ],
)
def test_a_location_is_a_folder_or_an_object_store_url(value: str, expected: object) -> None:
    assert parse_location(value, "hpo.study.experiments_dir") == expected


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("ftp://host/experiments", "scheme ftp:// is not supported"),
        ("hdfs://nn/experiments", "scheme hdfs:// is not supported"),
        ("gs://bucket/experiments", "scheme gs:// is not supported"),
        ("s3://AKIA:secret@hpo/experiments", "credentials or an endpoint in the URL"),
        ("s3:///experiments", "names no bucket"),
    ],
)
def test_a_url_the_project_cannot_honour_is_refused_with_the_key(value: str, says: str) -> None:
    with pytest.raises(UnsupportedLocationError) as refused:
        parse_location(value, "hpo.study.experiments_dir")
    message = str(refused.value)
    assert says in message
    assert "hpo.study.experiments_dir" in message
    assert "secret" not in message


def test_a_filesystem_only_command_refuses_an_object_store_url() -> None:
    with pytest.raises(UnsupportedLocationError, match=r"evaluate\.experiments_dir.*s3://"):
        local_folder("s3://hpo/experiments", "evaluate.experiments_dir")


@pytest.mark.slow
def test_kedro_run_refuses_an_unsupported_url_and_writes_no_folder_named_after_it(
    kedro_project: Path,
) -> None:
    params = (
        "data_ingest.source.synthetic.n_posts=40,"
        "hpo.study.n_trials=1,hpo.study.experiments_dir=ftp://hpo/experiments"
    )
    hpo = _kedro_run(kedro_project, "hpo", params)

    assert hpo.returncode != 0
    assert "hpo.study.experiments_dir='ftp://hpo/experiments'" in hpo.stderr, hpo.stderr[-3000:]
    assert "s3://bucket/prefix" in hpo.stderr  # says what is supported
    assert not (kedro_project / "ftp:").exists()
    assert not (kedro_project / "experiments").exists(), "nothing of a study was started"

    evaluate = _kedro_run(kedro_project, "evaluate", "evaluate.experiments_dir=ftp://hpo/x")
    assert evaluate.returncode != 0
    assert "evaluate.experiments_dir" in evaluate.stderr and "ftp://" in evaluate.stderr
    assert not (kedro_project / "ftp:").exists()


def test_the_orphan_cleanup_cli_refuses_a_url_instead_of_a_folder_named_s3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mental_health_hpo.checkpointing.cleanup import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s3:" / "hpo").mkdir(parents=True)  # what Path("s3://hpo") would have named
    assert main(["s3://hpo", "--apply"]) == 2
    assert "experiments_dir='s3://hpo'" in capsys.readouterr().err
    assert (tmp_path / "s3:" / "hpo").is_dir()
