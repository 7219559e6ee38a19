from __future__ import annotations

import pandas as pd
import pytest

from mental_health_hpo.constants import CRITERIA
from mental_health_hpo.data import (
    AlignmentConfig,
    DataValidationError,
    SplitConfig,
    align_annotations,
    assign_splits,
    build_model_input,
    check_disjoint_splits,
    generate_synthetic,
)
from mental_health_hpo.data.synthetic import SyntheticConfig


@pytest.fixture(scope="module")
def corpus() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate_synthetic(SyntheticConfig(n_posts=400, seed=11))


def test_splits_are_deterministic_disjoint_and_near_the_ratios(corpus) -> None:
    posts, annotations = corpus
    splits = assign_splits(posts, annotations, SplitConfig(seed=5))
    assert splits.equals(assign_splits(posts, annotations, SplitConfig(seed=5)))
    assert not splits.equals(assign_splits(posts, annotations, SplitConfig(seed=6)))
    check_disjoint_splits(posts, splits)
    shares = splits.value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.7, abs=0.03)
    assert shares["validation"] == pytest.approx(0.15, abs=0.03)
    assert shares["test"] == pytest.approx(0.15, abs=0.03)


def test_every_criterion_reaches_every_split(corpus) -> None:
    posts, annotations = corpus
    aligned, _ = align_annotations(posts, annotations, AlignmentConfig())
    table = build_model_input(posts, aligned, assign_splits(posts, aligned, SplitConfig()))
    positives = table[table["label"] == 1].groupby("split")["criterion"].nunique()
    assert positives.to_dict() == {"test": 9, "train": 9, "validation": 9}


def test_identical_texts_stay_in_one_split() -> None:
    posts = pd.DataFrame(
        {
            "post_id": [f"p{i}" for i in range(40)],
            "text": ["same words"] * 10 + [f"t{i}" for i in range(30)],
        }
    )
    empty = pd.DataFrame(columns=["post_id", "DSM5_symptom", "status"])
    splits = assign_splits(posts, empty, SplitConfig(seed=0))
    assert splits[[f"p{i}" for i in range(10)]].nunique() == 1


def test_leak_check_fails_loudly_on_shared_text() -> None:
    posts = pd.DataFrame(
        {"post_id": ["a", "b", "c"], "text": ["Same text.", "same  TEXT.", "other"]}
    )
    leaking = pd.Series({"a": "train", "b": "test", "c": "validation"})
    with pytest.raises(DataValidationError, match="identical text"):
        check_disjoint_splits(posts, leaking)


def test_model_input_rows_labels_and_spans(corpus) -> None:
    posts, annotations = corpus
    aligned, _ = align_annotations(posts, annotations, AlignmentConfig())
    table = build_model_input(posts, aligned, assign_splits(posts, aligned, SplitConfig()))
    assert len(table) == len(posts) * len(CRITERIA)
    positives = table[table["label"] == 1]
    assert (positives["status"] == "positive").all()
    spans = positives[positives["evidence_start"] >= 0]
    for row in spans.itertuples():
        assert row.text[row.evidence_start : row.evidence_end] == row.evidence_text
        assert [row.evidence_start, row.evidence_end] in [list(s) for s in row.evidence_spans]
    negatives = table[table["label"] == 0]
    assert (negatives["evidence_start"] == -1).all()
    assert set(negatives["status"]) == {"negative", "absent"}


def test_bad_ratios_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"data_ingest\.splits"):
        SplitConfig(train=0.9, validation=0.2, test=0.1)


def test_synthetic_model_input_runs_the_ingest_steps_in_memory() -> None:
    from mental_health_hpo.data.model_input import synthetic_model_input

    table = synthetic_model_input(
        SyntheticConfig(n_posts=30, seed=2), SplitConfig(train=0.6, validation=0.4, test=0.0)
    )
    assert len(table) == 30 * len(CRITERIA)
    assert set(table["split"]) == {"train", "validation"}
    assert table.groupby("post_id")["split"].nunique().max() == 1


def test_the_public_sample_gets_a_post_in_every_split(shared_sample_dir) -> None:
    from mental_health_hpo.data.sources import load_csv

    raw = load_csv(shared_sample_dir)
    aligned, _ = align_annotations(raw.posts, raw.annotations, AlignmentConfig())
    splits = assign_splits(raw.posts, aligned, SplitConfig())
    counts = splits.value_counts().to_dict()
    assert set(counts) == {"train", "validation", "test"}, counts  # it used to be 14/3/0
    assert sum(counts.values()) == len(raw.posts)
    assert counts["train"] > counts["validation"] and counts["train"] > counts["test"]
    assert splits.equals(assign_splits(raw.posts, aligned, SplitConfig()))
    check_disjoint_splits(raw.posts, splits)


def test_too_few_posts_fail_naming_the_minimum() -> None:
    posts = pd.DataFrame({"post_id": ["a", "b"], "text": ["one", "two"]})
    empty = pd.DataFrame(columns=["post_id", "DSM5_symptom", "status"])
    with pytest.raises(DataValidationError, match=r"at least 3 posts") as error:
        assign_splits(posts, empty, SplitConfig())
    assert "data_ingest.splits" in str(error.value)
    two_splits = SplitConfig(train=0.5, validation=0.5, test=0.0)
    assert sorted(assign_splits(posts, empty, two_splits)) == ["train", "validation"]


def test_evaluate_refuses_an_empty_split_before_loading_a_model() -> None:
    from mental_health_hpo.evaluation.run import evaluate_checkpoints
    from mental_health_hpo.model import ModelConfig

    config = ModelConfig.from_params({"encoder": "no-such-encoder-is-ever-loaded"})
    with pytest.raises(DataValidationError, match=r"split to evaluate has no rows"):
        evaluate_checkpoints(config, [], pd.DataFrame(columns=["post_id", "text", "split"]))
