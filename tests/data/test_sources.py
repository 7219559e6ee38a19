from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mental_health_hpo.data import (
    DatasetSourceError,
    DataValidationError,
    SourceConfig,
    load_source,
)
from mental_health_hpo.data.sources import HFSourceConfig, load_hf


def test_shared_sample_loads_through_csv(shared_sample_dir: Path) -> None:
    raw = load_source(SourceConfig(kind="csv", csv_path=str(shared_sample_dir)))
    assert (len(raw.posts), len(raw.annotations)) == (17, 25)
    assert raw.annotations["status"].dtype == "int64"
    assert raw.origin == {"source": "csv", "path": str(shared_sample_dir)}


def _hub_layout(shared_sample_dir: Path, target: Path) -> Path:
    """A local folder laid out like the irlab-udc/redsm5 hub repo."""
    target.mkdir()
    for name in ("redsm5_posts.csv", "redsm5_annotations.csv"):
        shutil.copy(shared_sample_dir / name, target / name)
    (target / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n"
        "  - split: posts\n    path: redsm5_posts.csv\n"
        "  - split: annotations\n    path: redsm5_annotations.csv\n---\n"
    )
    return target


def test_shared_sample_loads_through_a_hub_layout_folder(
    shared_sample_dir: Path, tmp_path: Path
) -> None:
    repo = _hub_layout(shared_sample_dir, tmp_path / "redsm5")
    raw = load_source(SourceConfig(kind="hf", hf=HFSourceConfig(dataset_id=str(repo))))
    expected = pd.read_csv(shared_sample_dir / "redsm5_posts.csv")
    assert sorted(raw.posts["post_id"]) == sorted(expected["post_id"])
    assert len(raw.annotations) == 25
    assert raw.origin["dataset_id"] == str(repo) and raw.origin["revision"] == "main"
    assert raw.post_splits is None


def test_hub_source_with_its_own_splits_uses_the_mapping(tmp_path: Path) -> None:
    repo = tmp_path / "with-splits"
    repo.mkdir()
    for i, name in enumerate(("train", "dev", "test")):
        pd.DataFrame(
            {
                "post_id": [f"{name}{j}" for j in range(3)],
                "text": [f"{name} {j} {i}" for j in range(3)],
            }
        ).to_csv(repo / f"posts_{name}.csv", index=False)
    pd.DataFrame(
        {
            "post_id": ["train0"],
            "sentence_id": ["train0_1"],
            "sentence_text": ["train 0 0"],
            "DSM5_symptom": ["FATIGUE"],
            "status": [1],
            "explanation": ["x"],
        }
    ).to_csv(repo / "annotations.csv", index=False)
    files = {name: f"posts_{name}.csv" for name in ("train", "dev", "test")}
    config = HFSourceConfig(
        dataset_id=str(repo),
        posts_file=files,
        annotations_file="annotations.csv",
        split_mapping={"train": "train", "validation": "dev", "test": "test"},
    )
    raw = load_hf(config)
    assert raw.post_splits is not None
    assert raw.post_splits["dev1"] == "validation" and raw.post_splits["test2"] == "test"

    missing = HFSourceConfig(
        dataset_id=str(repo),
        posts_file={"train": "posts_train.csv"},
        annotations_file="annotations.csv",
        split_mapping={"train": "train", "validation": "dev", "test": "test"},
    )
    with pytest.raises(DatasetSourceError) as error:
        load_hf(missing)
    message = str(error.value)
    for expected in (
        str(repo),
        "'main'",
        "Needed splits: ['train', 'dev', 'test']",
        "found: ['train']",
    ):
        assert expected in message


def test_hub_errors_are_retried_with_backoff_then_explained() -> None:
    attempts: list[int] = []
    slept: list[float] = []

    def flaky(config: HFSourceConfig, files: Any, split: Any) -> Any:
        attempts.append(1)
        raise ConnectionError("hub unreachable")

    with pytest.raises(DatasetSourceError) as error:
        load_hf(
            HFSourceConfig(dataset_id="irlab-udc/redsm5", revision="abc123"),
            loader=flaky,
            sleep=slept.append,
        )
    assert len(attempts) == 5 and slept == [1, 2, 4, 8]
    message = str(error.value)
    assert "irlab-udc/redsm5" in message and "abc123" in message and "HF_TOKEN" in message


def test_missing_csv_folder_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(DatasetSourceError, match=r"data_ingest\.source\.csv\.path"):
        load_source(SourceConfig(kind="csv", csv_path=str(tmp_path / "nowhere")))


def _write(folder: Path, posts: pd.DataFrame, annotations: pd.DataFrame) -> Path:
    folder.mkdir(exist_ok=True)
    posts.to_csv(folder / "redsm5_posts.csv", index=False)
    annotations.to_csv(folder / "redsm5_annotations.csv", index=False)
    return folder


GOOD_POSTS = pd.DataFrame({"post_id": ["a", "b"], "text": ["I can't sleep.", "Fine."]})
GOOD_ANNOTATIONS = pd.DataFrame(
    {
        "post_id": ["a"],
        "sentence_id": ["a_0"],
        "sentence_text": ["I can't sleep."],
        "DSM5_symptom": ["SLEEP_ISSUES"],
        "status": [1],
        "explanation": ["sleep"],
    }
)


@pytest.mark.parametrize(
    ("posts", "annotations", "expected"),
    [
        (GOOD_POSTS.drop(columns=["text"]), GOOD_ANNOTATIONS, r"missing column\(s\) \['text'\]"),
        (pd.concat([GOOD_POSTS, GOOD_POSTS.iloc[:1]]), GOOD_ANNOTATIONS, "duplicate post_id"),
        (
            GOOD_POSTS.assign(text=["I can't sleep.", "  "]),
            GOOD_ANNOTATIONS,
            "empty text for post_id 'b'",
        ),
        (
            GOOD_POSTS,
            GOOD_ANNOTATIONS.assign(DSM5_symptom=["INSOMNIA"]),
            "unknown DSM5_symptom value",
        ),
        (GOOD_POSTS, GOOD_ANNOTATIONS.assign(post_id=["zzz"]), "not in the posts table"),
        (GOOD_POSTS, GOOD_ANNOTATIONS.assign(status=[2]), "other than 0 or 1"),
    ],
)
def test_each_bad_input_has_its_own_clear_error(
    tmp_path: Path, posts: pd.DataFrame, annotations: pd.DataFrame, expected: str
) -> None:
    folder = _write(tmp_path / "bad", posts, annotations)
    with pytest.raises(DataValidationError, match=expected):
        load_source(SourceConfig(kind="csv", csv_path=str(folder)))


def test_good_input_passes(tmp_path: Path) -> None:
    raw = load_source(
        SourceConfig(
            kind="csv", csv_path=str(_write(tmp_path / "ok", GOOD_POSTS, GOOD_ANNOTATIONS))
        )
    )
    assert len(raw.posts) == 2


def _csv_folder(tmp_path: Path, posts_bytes: bytes) -> Path:
    """A folder with good annotations and the given bytes as its posts file."""
    folder = _write(tmp_path / "src", GOOD_POSTS, GOOD_ANNOTATIONS)
    (folder / "redsm5_posts.csv").write_bytes(posts_bytes)
    return folder


@pytest.mark.parametrize(
    ("posts_bytes", "expected"),
    [
        (b"", r"file is empty"),
        ("post_id,text\na,caf\u00e9\n".encode("latin-1"), r"not UTF-8.*iconv"),
        (bytes(range(256)) * 8, r"not UTF-8|not valid CSV"),
        (b'post_id,text\na,"I never close this quote\nb,Fine.\n', r"not valid CSV.*quote"),
    ],
    ids=["empty", "latin-1", "binary", "unterminated-quote"],
)
def test_unreadable_csv_names_the_file_what_was_expected_and_the_fix(
    tmp_path: Path, posts_bytes: bytes, expected: str
) -> None:
    folder = _csv_folder(tmp_path, posts_bytes)
    with pytest.raises(DatasetSourceError, match=expected) as error:
        load_source(SourceConfig(kind="csv", csv_path=str(folder)))
    message = str(error.value)
    assert str(folder / "redsm5_posts.csv") in message
    assert "expected a UTF-8 CSV with a header line ['post_id', 'text']" in message
    assert "Fix:" in message


def test_a_csv_path_that_is_a_file_says_a_folder_is_expected(
    shared_sample_dir: Path,
) -> None:
    path = shared_sample_dir / "redsm5_posts.csv"
    with pytest.raises(DatasetSourceError, match=r"which is a file; a folder was expected") as e:
        load_source(SourceConfig(kind="csv", csv_path=str(path)))
    assert f"perhaps {shared_sample_dir}" in str(e.value)


POST_LEVEL = pd.DataFrame(
    {
        "text": ["I can't sleep.", "Fine."],
        "labels": ["['SLEEP_ISSUES']", "[]"],
        "explanation": ["sleep", ""],
    }
)


def test_the_post_level_variant_is_named_in_the_error(tmp_path: Path) -> None:
    variant = tmp_path / "post-level"
    variant.mkdir()
    POST_LEVEL.to_csv(variant / "redsm5_posts.csv", index=False)
    GOOD_ANNOTATIONS.to_csv(variant / "redsm5_annotations.csv", index=False)
    with pytest.raises(DataValidationError, match="post-level ReDSM5 variant"):
        load_source(SourceConfig(kind="csv", csv_path=str(variant)))
    only = tmp_path / "only-variant"
    only.mkdir()
    POST_LEVEL.to_csv(only / "redsm5.csv", index=False)
    with pytest.raises(DatasetSourceError, match=r"redsm5\.csv.*post-level ReDSM5 variant"):
        load_source(SourceConfig(kind="csv", csv_path=str(only)))
    with pytest.raises(DatasetSourceError, match=r"a file; a folder.*post-level ReDSM5 variant"):
        load_source(SourceConfig(kind="csv", csv_path=str(only / "redsm5.csv")))
