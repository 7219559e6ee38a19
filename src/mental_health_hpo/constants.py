"""The ReDSM5 label space, shared by every package of the project.

Framework-free: imported by data, model, training, metrics and the Kedro shell alike.
"""

from __future__ import annotations

from typing import Final

#: The nine DSM-5 major-depressive-episode criteria, in the order the model predicts them.
CRITERIA: Final[tuple[str, ...]] = (
    "DEPRESSED_MOOD",
    "ANHEDONIA",
    "APPETITE_CHANGE",
    "SLEEP_ISSUES",
    "PSYCHOMOTOR",
    "FATIGUE",
    "WORTHLESSNESS",
    "COGNITIVE_ISSUES",
    "SUICIDAL_THOUGHTS",
)

#: Annotated in ReDSM5 but not a DSM-5 criterion: kept in the raw data, never a label.
SPECIAL_CASE: Final[str] = "SPECIAL_CASE"

#: Every value the ``DSM5_symptom`` column may take.
SYMPTOM_NAMES: Final[frozenset[str]] = frozenset((*CRITERIA, SPECIAL_CASE))

#: Short descriptions of each criterion, written for this project; the ``binary_pairs`` input
#: format pairs one of them with the post.
CRITERION_DESCRIPTIONS: Final[dict[str, str]] = {
    "DEPRESSED_MOOD": (
        "The person feels sad, empty, hopeless or low most of the day, nearly every day, "
        "or others see them tearful."
    ),
    "ANHEDONIA": (
        "The person has lost interest or pleasure in almost all activities they used to enjoy."
    ),
    "APPETITE_CHANGE": (
        "The person's appetite or weight has clearly changed: eating much less or much more, "
        "losing or gaining weight without trying."
    ),
    "SLEEP_ISSUES": (
        "The person sleeps far too little or far too much nearly every day: insomnia, waking "
        "early, or oversleeping."
    ),
    "PSYCHOMOTOR": (
        "The person's movement or speech is visibly slowed down, or they are restless and "
        "agitated, unable to sit still."
    ),
    "FATIGUE": (
        "The person feels tired or drained of energy nearly every day, even small tasks wear "
        "them out."
    ),
    "WORTHLESSNESS": (
        "The person feels worthless or blames themselves with excessive or inappropriate guilt."
    ),
    "COGNITIVE_ISSUES": (
        "The person finds it hard to think, concentrate or make decisions nearly every day."
    ),
    "SUICIDAL_THOUGHTS": (
        "The person thinks about death or suicide again and again, has a plan, or has tried."
    ),
}

#: Names of the three splits; the test split is read only by the evaluate pipeline.
SPLITS: Final[tuple[str, str, str]] = ("train", "validation", "test")
TEST_SPLIT: Final[str] = "test"
