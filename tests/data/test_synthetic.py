from __future__ import annotations

import pandas as pd
import pytest

from mental_health_hpo.constants import CRITERIA, SPECIAL_CASE
from mental_health_hpo.data import SyntheticConfig, generate_synthetic, validate_raw
from mental_health_hpo.data.alignment import AlignmentConfig, align_annotations


def test_same_seed_gives_identical_tables_and_other_seed_differs() -> None:
    first = generate_synthetic(SyntheticConfig(n_posts=80, seed=3))
    second = generate_synthetic(SyntheticConfig(n_posts=80, seed=3))
    other = generate_synthetic(SyntheticConfig(n_posts=80, seed=4))
    pd.testing.assert_frame_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])
    assert not first[0]["text"].equals(other[0]["text"])


def test_corpus_covers_every_symptom_negatives_and_post_shapes() -> None:
    posts, annotations = generate_synthetic(SyntheticConfig(n_posts=300, seed=1))
    validate_raw(posts, annotations, "test")
    positive = annotations[annotations["status"] == 1]
    assert set(positive["DSM5_symptom"]) == {*CRITERIA, SPECIAL_CASE}
    assert set(annotations.loc[annotations["status"] == 0, "DSM5_symptom"]) >= set(CRITERIA)
    criteria_per_post = (
        positive[positive["DSM5_symptom"].isin(CRITERIA)]
        .groupby("post_id")["DSM5_symptom"]
        .nunique()
    )
    assert (criteria_per_post >= 2).any(), "no post with several symptoms"
    assert len(criteria_per_post) < len(posts), "no post without symptoms"
    assert posts["text"].is_unique


def test_many_phrasings_per_symptom_and_evidence_sits_in_filler() -> None:
    posts, annotations = generate_synthetic(SyntheticConfig(n_posts=300, seed=2))
    positive = annotations[annotations["status"] == 1]
    for criterion in CRITERIA:
        phrasings = positive.loc[positive["DSM5_symptom"] == criterion, "sentence_text"]
        assert phrasings.str.lower().nunique() >= 10, criterion
    text = dict(zip(posts["post_id"], posts["text"], strict=True))
    longer = [
        len(text[p]) > len(s) + 20
        for p, s in zip(positive["post_id"], positive["sentence_text"], strict=True)
    ]
    assert all(longer)


def test_evidence_sentences_are_found_in_their_posts() -> None:
    posts, annotations = generate_synthetic(SyntheticConfig(n_posts=100, seed=5))
    _, counts = align_annotations(posts, annotations, AlignmentConfig())
    assert counts["fuzzy"] == counts["unaligned"] == 0
    assert counts["exact"] > 0 and counts["normalized"] > 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("n_posts", 0), ("max_symptoms_per_post", 10), ("noise_rate", 1.5)],
)
def test_bad_size_parameters_name_their_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SyntheticConfig(**{field: value})  # type: ignore[arg-type]


def test_reported_speech_hides_the_speaker_from_a_bag_of_words() -> None:
    """Evidence ("..., I said: X") and a quote ("..., my sister said: X") share their words."""
    import random
    import re

    from mental_health_hpo.data.synthetic import _reported

    own = _reported(random.Random(3), "FATIGUE", poster_speaks=True)
    quoted = _reported(random.Random(3), "FATIGUE", poster_speaks=False)
    assert own != quoted

    def words(sentence: str) -> list[str]:
        return sorted(re.findall(r"(?u)\b\w\w+\b", sentence.lower()))  # TF-IDF's tokens

    assert words(own) == words(quoted)


def test_quoted_symptoms_are_annotated_but_not_evidence() -> None:
    _, annotations = generate_synthetic(SyntheticConfig(n_posts=200, seed=4))
    sentences = annotations["sentence_text"].str.split().str.join(" ")
    someone_else = sentences.str.contains(r"(?i), (?!i )[^:]+: ", regex=True)
    quoted = annotations[someone_else]
    assert len(quoted) > 50
    assert set(quoted["status"]) == {0}
