"""Train/validation/test splits by post: deterministic, stratified, and checked for leaks.

Why by post: the nine (post, criterion) rows of one post must live in one split, or the test set
leaks into model selection. Posts with identical text are kept together for the same reason.

Example:
    >>> import pandas as pd
    >>> posts = pd.DataFrame({"post_id": list("abcdefghij"), "text": list("ABCDEFGHIJ")})
    >>> splits = assign_splits(posts, pd.DataFrame(columns=["post_id", "DSM5_symptom", "status"]),
    ...                        SplitConfig(seed=1))
    >>> sorted(splits.value_counts().to_dict().items())
    [('test', 1), ('train', 7), ('validation', 2)]
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass

import pandas as pd

from mental_health_hpo.constants import CRITERIA, SPLITS
from mental_health_hpo.data.errors import DataConfigError, DataValidationError


@dataclass(frozen=True)
class SplitConfig:
    """Ratios of train/validation/test and the seed that fixes the assignment."""

    train: float = 0.7
    validation: float = 0.15
    test: float = 0.15
    seed: int = 42

    def __post_init__(self) -> None:
        ratios = (self.train, self.validation, self.test)
        if any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
            raise DataConfigError(
                f"data_ingest.splits ratios must be >= 0 and sum to 1, got train={self.train}, "
                f"validation={self.validation}, test={self.test}"
            )

    @property
    def ratios(self) -> dict[str, float]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


def _stratum(positives: set[str], counts: dict[str, int]) -> str:
    """A post's stratum: its rarest positive criterion, or 'none' (as far as the data allow)."""
    if not positives:
        return "none"
    return min(positives, key=lambda c: (counts[c], c))


def _text_key(text: str) -> str:
    return hashlib.sha256(" ".join(str(text).split()).casefold().encode()).hexdigest()


def assign_splits(posts: pd.DataFrame, annotations: pd.DataFrame, config: SplitConfig) -> pd.Series:
    """Return a Series post_id -> split.

    Posts are grouped by normalized text (duplicates travel together), grouped into strata by
    their rarest positive criterion, shuffled with the seed, then each unit goes to the split
    furthest below its target share within its stratum.
    """
    positive = annotations[
        (annotations["status"] == 1) & annotations["DSM5_symptom"].isin(CRITERIA)
    ]
    positives_by_post: dict[str, set[str]] = defaultdict(set)
    for post_id, symptom in zip(positive["post_id"], positive["DSM5_symptom"], strict=True):
        positives_by_post[str(post_id)].add(str(symptom))
    counts = {c: 0 for c in CRITERIA}
    for symptoms in positives_by_post.values():
        for symptom in symptoms:
            counts[symptom] += 1

    units: dict[str, list[str]] = defaultdict(list)
    for post_id, text in zip(posts["post_id"].astype(str), posts["text"], strict=True):
        units[_text_key(text)].append(post_id)
    strata: dict[str, list[list[str]]] = defaultdict(list)
    for key in sorted(units):
        members = units[key]
        symptoms = set().union(*(positives_by_post.get(p, set()) for p in members))
        strata[_stratum(symptoms, counts)].append(members)

    wanted = [s for s in SPLITS if config.ratios[s] > 0]
    n_units = sum(len(group) for group in strata.values())
    if n_units < len(wanted):
        raise DataValidationError(
            f"{len(posts)} post(s) with {n_units} distinct text(s) cannot fill the "
            f"{len(wanted)} splits {wanted}: every split with a ratio above 0 needs at least one "
            f"post, so the data needs at least {len(wanted)} posts with different texts. Add "
            f"posts, or set the ratio of a split you do not need to 0 in data_ingest.splits."
        )
    rng = random.Random(config.seed)
    ratios = config.ratios
    placed: list[tuple[str, list[str]]] = []  # (split, members) in a seed-fixed order
    for name in sorted(strata):
        group = strata[name]
        rng.shuffle(group)
        taken = dict.fromkeys(SPLITS, 0)
        for i, members in enumerate(group, start=1):
            split = max(SPLITS, key=lambda s: (ratios[s] * i - taken[s], ratios[s]))
            taken[split] += 1
            placed.append((split, members))
    _fill_empty_splits(placed, wanted, ratios)
    assignment = {post_id: split for split, members in placed for post_id in members}
    return pd.Series(assignment, name="split").rename_axis("post_id")


def _fill_empty_splits(
    placed: list[tuple[str, list[str]]], wanted: list[str], ratios: dict[str, float]
) -> None:
    """Move one unit into each wanted split that stratification left empty.

    Why: on small data every stratum is one or two posts, and the largest-deficit rule sends
    each of them to train, so the 17-post public sample used to split 14/3/0 and evaluate then
    had no test rows. The donor is the split furthest above its target share; the unit moved is
    its last one in the seed-fixed order, so the result stays deterministic.
    """
    for split in wanted:
        if any(s == split for s, _ in placed):
            continue
        total = len(placed)
        sizes = {s: sum(1 for t, _ in placed if t == s) for s in SPLITS}
        donor = max(
            (s for s in SPLITS if sizes[s] > 1),
            key=lambda s: (sizes[s] - ratios[s] * total, sizes[s]),
        )
        index = max(i for i, (s, _) in enumerate(placed) if s == donor)
        placed[index] = (split, placed[index][1])


def require_rows(table: pd.DataFrame, what: str) -> None:
    """Refuse an empty split table before it reaches code that indexes its rows.

    ``what`` names the table for the user (``"the split to evaluate"``).
    """
    if table.empty:
        raise DataValidationError(
            f"{what} has no rows (0 posts). Re-run data_ingest with more posts: each split "
            f"needs at least one; or change data_ingest.splits so that this split gets a share "
            f"above 0 (data_ingest fails naming the minimum number of posts when there are too "
            f"few)."
        )


def check_disjoint_splits(posts: pd.DataFrame, splits: pd.Series) -> None:
    """Fail loudly if two splits share a post id or an identical (normalized) text."""
    frame = posts.assign(post_id=posts["post_id"].astype(str))
    frame["split"] = frame["post_id"].map(splits)
    missing = frame.loc[frame["split"].isna(), "post_id"].tolist()
    if missing:
        raise DataValidationError(f"posts {missing[:5]} were assigned to no split")
    shared_ids = frame.groupby("post_id")["split"].nunique()
    shared_ids = shared_ids[shared_ids > 1]
    if not shared_ids.empty:
        raise DataValidationError(
            f"post ids {shared_ids.index.tolist()[:5]} appear in more than one split: the test "
            f"set would leak into training. Deduplicate the posts or fix the source's splits."
        )
    frame["text_key"] = frame["text"].map(_text_key)
    shared_texts = frame.groupby("text_key")["split"].nunique()
    leaking = frame[frame["text_key"].isin(shared_texts[shared_texts > 1].index)]
    if not leaking.empty:
        raise DataValidationError(
            f"posts {sorted(leaking['post_id'])[:5]} have identical text but sit in different "
            f"splits: the test set would leak into training. Remove the duplicate posts or put "
            f"them in one split."
        )
