"""A tiny hand-made model-input table in the data contract format (docs/architecture.md).

Independent of the synthetic generator so the trainer's tests stay small and fast: a handful of
short posts, each expanded to its nine (post, criterion) rows.
"""

from __future__ import annotations

import random

import pandas as pd

from mental_health_hpo.constants import CRITERIA

#: One evidence sentence per criterion.
_EVIDENCE = {
    "DEPRESSED_MOOD": "I feel empty and sad every single day.",
    "ANHEDONIA": "Nothing I used to love is fun anymore.",
    "APPETITE_CHANGE": "I barely eat and lost a lot of weight.",
    "SLEEP_ISSUES": "I wake up at four and cannot fall asleep again.",
    "PSYCHOMOTOR": "I pace around the room and cannot sit still.",
    "FATIGUE": "Even a shower leaves me exhausted.",
    "WORTHLESSNESS": "I am a burden and everything is my fault.",
    "COGNITIVE_ISSUES": "I read the same page ten times and forget it.",
    "SUICIDAL_THOUGHTS": "I keep thinking everyone would be better off without me.",
}
_FILLER = (
    "Work was busy this week.",
    "My cat sat on the keyboard again.",
    "The weather turned cold yesterday.",
    "I watched a film with a friend.",
    "The bus was late this morning.",
    "We cooked pasta for dinner.",
)

COLUMNS = [
    "post_id",
    "text",
    "criterion",
    "label",
    "status",
    "evidence_start",
    "evidence_end",
    "evidence_text",
    "evidence_spans",
    "alignment",
    "split",
]


def make_model_input(n_posts: int = 8, split: str = "train", seed: int = 0) -> pd.DataFrame:
    """``n_posts`` posts of varied length, each with 0-2 positive criteria, nine rows per post."""
    rng = random.Random(f"{seed}-{split}")
    rows: list[dict[str, object]] = []
    for index in range(n_posts):
        positives = rng.sample(CRITERIA, rng.randint(0, 2))
        sentences = rng.sample(_FILLER, rng.randint(1, 4))
        for criterion in positives:
            sentences.insert(rng.randint(0, len(sentences)), _EVIDENCE[criterion])
        text = " ".join(sentences)
        post_id = f"{split}-{seed}-{index}"
        for criterion in CRITERIA:
            label = int(criterion in positives)
            start = text.find(_EVIDENCE[criterion]) if label else -1
            end = start + len(_EVIDENCE[criterion]) if label else -1
            rows.append(
                {
                    "post_id": post_id,
                    "text": text,
                    "criterion": criterion,
                    "label": label,
                    "status": "positive" if label else "absent",
                    "evidence_start": start,
                    "evidence_end": end,
                    "evidence_text": text[start:end] if label else "",
                    "evidence_spans": [[start, end]] if label else [],
                    "alignment": "exact" if label else "none",
                    "split": split,
                }
            )
    table = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("label", "evidence_start", "evidence_end"):
        table[column] = table[column].astype("int64")
    return table
