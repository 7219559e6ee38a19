"""A synthetic ReDSM5-format corpus, generated deterministically from a seed.

Why: the real corpus is gated and this project must run offline. The generator writes the official
two-table schema, with evidence as whole sentences as in ReDSM5.

What a model must learn, and why a bag of words is not enough (version 1 was: a TF-IDF sentence
classifier scored sentence-evidence macro-F1 0.94 on it, so "evidence" was a word lookup):

- a sentence is evidence when the *poster* reports the symptom. Symptom sentences also come as
  reported speech: "After my roommate asked, I said: I can't fall asleep until dawn." is the
  poster's evidence, "After I asked, my roommate said: I can't fall asleep until dawn." is
  someone else's and evidence for nothing (even when the poster has that symptom too). Both
  hold the same words ("I" is a one-letter token a bag of words drops): only who speaks differs;
- explicit denials ("I sleep fine at night") and topic mentions ("I read an article about
  insomnia") reuse the symptom's vocabulary and are not evidence;
- every symptom has many phrasings assembled from parts (openers, cores, tails), symptoms share
  vocabulary ("tired", "can't", "nights"), evidence sits among filler that shares words with
  symptoms too, and some sentences carry typos or lose their casing.

So the evidence of a sentence depends on who speaks in it, not only on which words it holds.

Example:
    >>> posts, annotations = generate_synthetic(SyntheticConfig(n_posts=20, seed=7))
    >>> sorted(posts.columns)
    ['post_id', 'text']
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pandas as pd

from mental_health_hpo.constants import CRITERIA, SPECIAL_CASE
from mental_health_hpo.data import synthetic_phrases as phrases
from mental_health_hpo.data.schema import ANNOTATION_COLUMNS, POST_COLUMNS

GENERATOR_VERSION = "2"


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and mix of the synthetic corpus.

    Attributes:
        n_posts: number of posts.
        seed: the whole corpus is a function of this seed and the other fields.
        max_symptoms_per_post: upper bound of distinct positive symptoms in one post.
        no_symptom_rate: share of posts with no positive symptom at all.
        negative_rate: chance that a post also carries an explicit negative for another symptom.
        special_case_rate: chance of a SPECIAL_CASE sentence.
        noise_rate: chance that a sentence gets a typo or loses its casing.
        annotation_variant_rate: chance that an annotation's sentence_text differs from the post's
            sentence in case or spacing (exercises the normalized alignment path).
        filler_sentences: (min, max) filler sentences per post.
        quoted_rate: chance, tried twice per post, that it quotes someone else's symptom
            sentence (any symptom, the poster's own included): the words of evidence, but not
            evidence.
        reported_rate: chance that a poster's own evidence sentence is reported speech, in the
            same frames as the quotes with speaker and listener swapped.
        topic_rate: chance of a topic mention of a symptom (not evidence either).
    """

    n_posts: int = 300
    seed: int = 42
    max_symptoms_per_post: int = 3
    no_symptom_rate: float = 0.2
    negative_rate: float = 0.3
    special_case_rate: float = 0.1
    noise_rate: float = 0.1
    annotation_variant_rate: float = 0.05
    filler_sentences: tuple[int, int] = (2, 4)
    quoted_rate: float = 0.5
    reported_rate: float = 0.3
    topic_rate: float = 0.2

    def __post_init__(self) -> None:
        if self.n_posts < 1:
            raise ValueError(f"synthetic.n_posts must be >= 1, got {self.n_posts}")
        if not 1 <= self.max_symptoms_per_post <= len(CRITERIA):
            raise ValueError(
                f"synthetic.max_symptoms_per_post must be in 1..{len(CRITERIA)}, "
                f"got {self.max_symptoms_per_post}"
            )
        rates = (
            "no_symptom_rate",
            "negative_rate",
            "special_case_rate",
            "noise_rate",
            "quoted_rate",
            "reported_rate",
            "topic_rate",
        )
        for name in rates:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"synthetic.{name} must be within [0, 1], got {value}")
        low, high = self.filler_sentences
        if not 0 <= low <= high:
            raise ValueError("synthetic.filler_sentences must be (min, max) with 0 <= min <= max")


def _sentence(rng: random.Random, symptom: str) -> str:
    openers, cores, tails = phrases.SYMPTOM_PARTS[symptom]
    core = rng.choice(cores)
    opener = rng.choice(openers)
    body = f"{opener}{core}{rng.choice(tails)}" if opener else f"{core}{rng.choice(tails)}"
    return body[0].upper() + body[1:] + rng.choice([".", ".", ".", "!", "..."])


def _reported(rng: random.Random, symptom: str, *, poster_speaks: bool) -> str:
    """A symptom sentence as reported speech; the poster's own words only if ``poster_speaks``."""
    quote = _sentence(rng, symptom).rstrip(".!")
    other = rng.choice(phrases.OTHERS)
    a, b = (other, "I") if poster_speaks else ("I", other)
    frame = rng.choice(phrases.SPEECH_FRAMES).format(a=a, b=b)
    return f"{frame[0].upper()}{frame[1:]}: {quote}."


def _plain(rng: random.Random, text: str) -> str:
    return text[0].upper() + text[1:] + rng.choice([".", ".", "!"])


def _add_noise(rng: random.Random, sentence: str, rate: float) -> str:
    """Typos and lost casing, as in real Reddit text."""
    if rng.random() >= rate:
        return sentence
    if rng.random() < 0.5:
        return sentence.lower()
    words = sentence.split(" ")
    candidates = [i for i, word in enumerate(words) if len(word) > 4 and word.isalpha()]
    if not candidates:
        return sentence
    i = rng.choice(candidates)
    word = words[i]
    j = rng.randrange(1, len(word) - 2)
    words[i] = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    return " ".join(words)


def _annotation_variant(rng: random.Random, sentence: str, rate: float) -> str:
    if rng.random() >= rate:
        return sentence
    return "  ".join(sentence.lower().split(" "))


def generate_synthetic(config: SyntheticConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate ``(posts, annotations)`` in the official ReDSM5 schema.

    Deterministic: the same config gives byte-identical tables. Post texts are unique.
    """
    rng = random.Random(config.seed)
    posts: list[dict[str, str]] = []
    annotations: list[dict[str, object]] = []
    seen_texts: set[str] = set()
    index = 0
    while len(posts) < config.n_posts:
        post_id = f"syn_{config.seed}_{index:05d}"
        index += 1
        text, post_annotations = _generate_post(rng, post_id, config)
        if text in seen_texts:
            continue
        seen_texts.add(text)
        posts.append({"post_id": post_id, "text": text})
        annotations.extend(post_annotations)
    posts_df = pd.DataFrame(posts, columns=list(POST_COLUMNS))
    annotations_df = pd.DataFrame(annotations, columns=list(ANNOTATION_COLUMNS))
    annotations_df["status"] = annotations_df["status"].astype("int64")
    return posts_df, annotations_df


def _generate_post(
    rng: random.Random, post_id: str, config: SyntheticConfig
) -> tuple[str, list[dict[str, object]]]:
    """One post: filler with evidence sentences set in it, and its annotations."""
    if rng.random() < config.no_symptom_rate:
        positives: list[str] = []
    else:
        positives = rng.sample(CRITERIA, rng.randint(1, config.max_symptoms_per_post))
    remaining = [c for c in CRITERIA if c not in positives]
    negatives = [rng.choice(remaining)] if rng.random() < config.negative_rate else []

    # (sentence, symptom or None, status)
    tagged: list[tuple[str, str | None, int]] = []
    for symptom in positives:
        if rng.random() < config.reported_rate:
            tagged.append((_reported(rng, symptom, poster_speaks=True), symptom, 1))
        else:
            tagged.append((_sentence(rng, symptom), symptom, 1))
    for symptom in negatives:
        tagged.append((_plain(rng, rng.choice(phrases.NEGATIVES[symptom])), symptom, 0))
    for _ in range(2):  # up to two quotes: as many hard negatives as there are evidence cells
        if rng.random() < config.quoted_rate:
            symptom = rng.choice(CRITERIA)
            tagged.append((_reported(rng, symptom, poster_speaks=False), symptom, 0))
    if rng.random() < config.topic_rate:
        symptom = rng.choice(CRITERIA)
        topic = rng.choice(phrases.TOPIC_FRAMES).format(topic=rng.choice(phrases.TOPICS[symptom]))
        tagged.append((_plain(rng, topic), symptom, 0))
    if rng.random() < config.special_case_rate:
        tagged.append((_plain(rng, rng.choice(phrases.SPECIAL_CASES)), SPECIAL_CASE, 1))
    low, high = config.filler_sentences
    for filler in rng.sample(phrases.FILLER, rng.randint(low, high)):
        tagged.append((_plain(rng, filler), None, 0))
    rng.shuffle(tagged)
    if rng.random() < 0.5:
        tagged.insert(0, (rng.choice(phrases.OPENERS), None, 0))
    if rng.random() < 0.5:
        tagged.append((rng.choice(phrases.CLOSERS), None, 0))

    sentences = [_add_noise(rng, sentence, config.noise_rate) for sentence, _, _ in tagged]
    rows: list[dict[str, object]] = []
    for position, ((_, tag, status), sentence) in enumerate(zip(tagged, sentences, strict=True)):
        if tag is None:
            continue
        symptom = tag
        name = symptom.lower().replace("_", " ")
        rows.append(
            {
                "post_id": post_id,
                "sentence_id": f"{post_id}_{position}",
                "sentence_text": _annotation_variant(rng, sentence, config.annotation_variant_rate),
                "DSM5_symptom": symptom,
                "status": status,
                "explanation": phrases.EXPLANATIONS[status].format(name=name),
            }
        )
    return " ".join(sentences), rows
