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
from mental_health_hpo.data.schema import ANNOTATION_COLUMNS, POST_COLUMNS

GENERATOR_VERSION = "2"

# Each symptom: (openers, cores, tails). A sentence is opener + core + tail, so each symptom has
# hundreds of surface forms. Cores are first-person, as on Reddit.
_SYMPTOM_PARTS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "DEPRESSED_MOOD": (
        ["", "Honestly ", "Lately ", "Most days ", "For weeks now "],
        [
            "I feel empty and sad",
            "I just feel hopeless",
            "everything feels dark and heavy",
            "I cry for no reason",
            "I feel so down I can't shake it",
            "my mood is at rock bottom",
            "there's this constant sadness in me",
            "I feel numb and miserable",
        ],
        ["", " all the time", " and it doesn't lift", " nearly every day", " no matter what"],
    ),
    "ANHEDONIA": (
        ["", "Honestly ", "These days ", "Weirdly ", "For months "],
        [
            "nothing I used to love interests me anymore",
            "I stopped enjoying games and music",
            "I don't care about my hobbies now",
            "even seeing friends gives me no pleasure",
            "I can't enjoy anything",
            "things that were fun feel pointless",
            "I lost interest in basically everything",
        ],
        ["", " at all", " anymore", " and I don't know why", " which scares me"],
    ),
    "APPETITE_CHANGE": (
        ["", "Lately ", "Recently ", "This month ", "Honestly "],
        [
            "I barely eat anything",
            "I've lost a lot of weight without trying",
            "I keep binge eating at night",
            "food has no appeal to me",
            "I gained weight from stress eating",
            "I skip meals because I'm never hungry",
            "my appetite is completely gone",
        ],
        ["", " these weeks", " and my clothes don't fit", " most days", " again"],
    ),
    "SLEEP_ISSUES": (
        ["", "Every night ", "Lately ", "For weeks ", "Again "],
        [
            "I can't fall asleep until dawn",
            "I wake up at 4am and can't get back to sleep",
            "I sleep twelve hours and still want more",
            "my insomnia is back",
            "I lie awake all night",
            "I keep oversleeping through my alarms",
            "my sleep schedule is completely wrecked",
        ],
        ["", " every night", " no matter what I try", " and I'm exhausted", " these days"],
    ),
    "PSYCHOMOTOR": (
        ["", "People say ", "Lately ", "At work ", "Honestly "],
        [
            "I move and talk so slowly",
            "I can't sit still and keep pacing",
            "my body feels like it's moving through mud",
            "I'm restless and fidgety all day",
            "I speak so slowly people finish my sentences",
            "I keep wringing my hands and pacing around",
            "every movement feels slowed down",
        ],
        ["", " all the time", " and others notice", " these days", " for no reason"],
    ),
    "FATIGUE": (
        ["", "Every day ", "Lately ", "Honestly ", "Even after resting "],
        [
            "I'm exhausted all the time",
            "I have no energy to do anything",
            "even showering wears me out",
            "I feel drained and tired constantly",
            "getting out of bed takes all my energy",
            "I'm worn out by the smallest tasks",
            "my body feels heavy and tired",
        ],
        ["", " every day", " no matter how much I rest", " and it's getting worse", " lately"],
    ),
    "WORTHLESSNESS": (
        ["", "Honestly ", "Deep down ", "Lately ", "Every day "],
        [
            "I feel completely worthless",
            "I blame myself for everything that goes wrong",
            "I'm a failure and a burden to everyone",
            "I hate myself so much",
            "I feel guilty for existing",
            "everyone would be better off without my mistakes",
            "I feel like I'm useless",
        ],
        ["", " all the time", " and I can't stop thinking it", " no matter what", " again"],
    ),
    "COGNITIVE_ISSUES": (
        ["", "At school ", "Lately ", "At work ", "Honestly "],
        [
            "I can't concentrate on anything",
            "I read the same page over and over",
            "I can't make even simple decisions",
            "my mind is foggy and slow",
            "I keep forgetting what I was doing",
            "I can't focus long enough to finish a task",
            "thinking clearly feels impossible",
        ],
        ["", " anymore", " these days", " and my grades are slipping", " at all"],
    ),
    "SUICIDAL_THOUGHTS": (
        ["", "Sometimes ", "Lately ", "At night ", "Honestly "],
        [
            "I think about ending my life",
            "I wish I could just not wake up",
            "I've been thinking about killing myself",
            "I keep imagining my own death",
            "I don't want to be alive anymore",
            "I looked up ways to die",
            "I wrote a goodbye note",
        ],
        ["", " more often", " and it scares me", " every night", " again"],
    ),
}

# Explicit negatives reuse the symptom's vocabulary, so words alone do not decide the label.
_NEGATIVES: dict[str, list[str]] = {
    "DEPRESSED_MOOD": ["I don't feel sad, just stressed", "my mood is actually okay these days"],
    "ANHEDONIA": ["I still enjoy my games and music", "I still love seeing my friends"],
    "APPETITE_CHANGE": ["my appetite is normal", "I eat fine, food isn't the problem"],
    "SLEEP_ISSUES": ["I sleep fine at night", "sleep isn't an issue for me"],
    "PSYCHOMOTOR": ["I move around normally", "nobody says I seem slowed down or restless"],
    "FATIGUE": ["I have plenty of energy", "I'm not tired, I'm just bored"],
    "WORTHLESSNESS": ["I don't blame myself for this", "I know I'm not worthless"],
    "COGNITIVE_ISSUES": ["I can focus on work fine", "my concentration is okay"],
    "SUICIDAL_THOUGHTS": ["I'm not suicidal", "I have no thoughts of ending my life"],
}

# Other people whose words the poster quotes: the quoted sentence is not the poster's evidence.
_OTHERS = [
    "my roommate",
    "my sister",
    "my brother",
    "my mom",
    "my dad",
    "my best friend",
    "a coworker",
    "my girlfriend",
    "my boyfriend",
    "my cousin",
    "a guy in my class",
    "my neighbour",
    "my aunt",
    "a friend from work",
    "my grandma",
    "someone on a forum",
]
# Reported speech with the speaker and the listener swapped: "After my sister asked, I said:"
# (the poster speaks: evidence) against "After I asked, my sister said:" (someone else speaks:
# not evidence). Both hold the same words, since "I" is a one-letter token; only who does what
# differs, which a bag of words cannot see.
_SPEECH_FRAMES = [
    "after {a} asked, {b} said",
    "when {a} called, {b} admitted",
    "once {a} texted, {b} replied",
    "before {a} left, {b} confessed",
    "since {a} kept asking, {b} finally said",
    "when {a} checked in, {b} wrote",
]
# Topic mentions: the symptom's subject, in nobody's experience.
_TOPICS: dict[str, list[str]] = {
    "DEPRESSED_MOOD": ["sadness and hopelessness", "why people feel empty"],
    "ANHEDONIA": ["losing interest in hobbies", "why people stop enjoying music"],
    "APPETITE_CHANGE": ["appetite and weight loss", "binge eating"],
    "SLEEP_ISSUES": ["insomnia", "how much sleep people need"],
    "PSYCHOMOTOR": ["restlessness and pacing", "slowed speech in patients"],
    "FATIGUE": ["chronic tiredness", "why people have no energy"],
    "WORTHLESSNESS": ["guilt and self-blame", "feeling worthless"],
    "COGNITIVE_ISSUES": ["trouble concentrating", "brain fog"],
    "SUICIDAL_THOUGHTS": ["suicide prevention", "people who think about death"],
}
_TOPIC_FRAMES = [
    "I read an article about {topic}",
    "we had a lecture on {topic} today",
    "I watched a documentary about {topic}",
    "my teacher talked about {topic} in class",
]

_SPECIAL_CASES = [
    "I was diagnosed with bipolar disorder a few years ago",
    "my therapist thinks it might be PTSD",
    "I had a panic attack in the grocery store",
    "I started new medication last month",
    "my psychiatrist changed my dose again",
]

# Filler shares words with symptoms ("tired", "night", "eat", "focus") on purpose.
_FILLER = [
    "I work at a warehouse and my shift starts at 6",
    "my roommate got a new cat last week",
    "we watched a movie on friday night",
    "I'm tired of my landlord ignoring the heating",
    "my sister is getting married in the spring",
    "I need to focus on my driving test next month",
    "we went out to eat for my dad's birthday",
    "the weather has been awful here",
    "I've been learning to cook pasta",
    "my phone screen cracked again",
    "I moved to a new city in january",
    "my boss wants the report by monday",
    "I have a dentist appointment tomorrow",
    "my friends and I used to play football",
    "the bus was late again this morning",
    "I started a new job at a call center",
    "my mom keeps calling about the holidays",
    "I've been trying to save money for a car",
    "my laptop is really slow these days",
    "our team lost the game last night",
]
_OPENERS = ["Hi everyone.", "Throwaway account.", "Not sure where else to post this.", "Long post."]
_CLOSERS = ["Thanks for reading.", "Any advice?", "I don't know what to do.", "Sorry for the rant."]

_EXPLANATIONS = {
    1: "The sentence describes {name} directly, consistent with the DSM-5 criterion.",
    0: "The sentence mentions {name} but does not report it for the poster.",
}


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
    openers, cores, tails = _SYMPTOM_PARTS[symptom]
    core = rng.choice(cores)
    opener = rng.choice(openers)
    body = f"{opener}{core}{rng.choice(tails)}" if opener else f"{core}{rng.choice(tails)}"
    return body[0].upper() + body[1:] + rng.choice([".", ".", ".", "!", "..."])


def _reported(rng: random.Random, symptom: str, *, poster_speaks: bool) -> str:
    """A symptom sentence as reported speech; the poster's own words only if ``poster_speaks``."""
    quote = _sentence(rng, symptom).rstrip(".!")
    other = rng.choice(_OTHERS)
    a, b = (other, "I") if poster_speaks else ("I", other)
    frame = rng.choice(_SPEECH_FRAMES).format(a=a, b=b)
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
        tagged.append((_plain(rng, rng.choice(_NEGATIVES[symptom])), symptom, 0))
    for _ in range(2):  # up to two quotes: as many hard negatives as there are evidence cells
        if rng.random() < config.quoted_rate:
            symptom = rng.choice(CRITERIA)
            tagged.append((_reported(rng, symptom, poster_speaks=False), symptom, 0))
    if rng.random() < config.topic_rate:
        symptom = rng.choice(CRITERIA)
        topic = rng.choice(_TOPIC_FRAMES).format(topic=rng.choice(_TOPICS[symptom]))
        tagged.append((_plain(rng, topic), symptom, 0))
    if rng.random() < config.special_case_rate:
        tagged.append((_plain(rng, rng.choice(_SPECIAL_CASES)), SPECIAL_CASE, 1))
    low, high = config.filler_sentences
    for filler in rng.sample(_FILLER, rng.randint(low, high)):
        tagged.append((_plain(rng, filler), None, 0))
    rng.shuffle(tagged)
    if rng.random() < 0.5:
        tagged.insert(0, (rng.choice(_OPENERS), None, 0))
    if rng.random() < 0.5:
        tagged.append((rng.choice(_CLOSERS), None, 0))

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
                "explanation": _EXPLANATIONS[status].format(name=name),
            }
        )
    return " ".join(sentences), rows
