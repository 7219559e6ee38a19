from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mental_health_hpo.data.alignment import AlignmentConfig, align_annotations, align_sentence


def test_exact_then_normalized_then_fuzzy_then_unaligned() -> None:
    post = "I work nights.  My SLEEP is a mess lately! Nothing else to say."
    config = AlignmentConfig(fuzzy_threshold=0.5)
    exact = align_sentence(post, "I work nights.", config)
    assert (exact.outcome, post[exact.start : exact.end]) == ("exact", "I work nights.")
    normalized = align_sentence(post, "my sleep   is a MESS lately!", config)
    assert normalized.outcome == "normalized"
    assert post[normalized.start : normalized.end] == "My SLEEP is a mess lately!"
    fuzzy = align_sentence(post, "My sleep has been a mess recently.", config)
    assert fuzzy.outcome == "fuzzy"
    assert post[fuzzy.start : fuzzy.end] == "My SLEEP is a mess lately!"
    unaligned = align_sentence(post, "Completely unrelated words about cats.", config)
    assert (unaligned.outcome, unaligned.start, unaligned.end) == ("unaligned", -1, -1)


def test_shared_sample_is_placed_only_by_fuzzy_matching(shared_sample_dir: Path) -> None:
    posts = pd.read_csv(shared_sample_dir / "redsm5_posts.csv")
    annotations = pd.read_csv(shared_sample_dir / "redsm5_annotations.csv")
    aligned, counts = align_annotations(posts, annotations, AlignmentConfig())
    assert counts["exact"] == 0 and counts["normalized"] == 0
    assert counts["fuzzy"] + counts["unaligned"] == 25
    assert counts["fuzzy"] >= 20
    text = dict(zip(posts["post_id"], posts["text"], strict=True))
    row = aligned[aligned["sentence_id"] == "s_1270_9_8"].iloc[0]
    placed = text[row["post_id"]][row["evidence_start"] : row["evidence_end"]]
    assert placed.startswith("My sleep pattern was a mess")


def test_threshold_one_leaves_paraphrases_unaligned(shared_sample_dir: Path) -> None:
    posts = pd.read_csv(shared_sample_dir / "redsm5_posts.csv")
    annotations = pd.read_csv(shared_sample_dir / "redsm5_annotations.csv")
    _, counts = align_annotations(posts, annotations, AlignmentConfig(fuzzy_threshold=1.0))
    assert counts["unaligned"] == 25


def test_threshold_out_of_range_names_the_field() -> None:
    with pytest.raises(ValueError, match="fuzzy_threshold"):
        AlignmentConfig(fuzzy_threshold=0.0)


def test_sentences_covered_marks_the_sentences_a_span_mostly_covers() -> None:
    from mental_health_hpo.data.alignment import sentences_covered, split_sentences

    text = "I slept badly. I ate nothing at all today. Fine."
    sentences = split_sentences(text)
    second = (text.index("I ate"), text.index("Fine") - 1)
    assert sentences_covered(sentences, [second]) == [1]
    assert sentences_covered(sentences, [(0, second[1])]) == [0, 1]  # a two-sentence match
    assert sentences_covered(sentences, [(0, second[0] + 3)]) == [0]  # a stray overlap: no
    assert sentences_covered(sentences, [(second[0] + 2, second[0] + 9)]) == [1]  # a phrase
    assert sentences_covered(sentences, [(-1, -1)]) == []
