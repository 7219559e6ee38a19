"""Validation of raw ReDSM5 tables, with errors that say what is wrong and how to fix it.

Every check runs before anything is written, so bad input never leaves partial outputs.
"""

from __future__ import annotations

import pandas as pd

from mental_health_hpo.constants import SYMPTOM_NAMES
from mental_health_hpo.data.errors import DataValidationError
from mental_health_hpo.data.schema import ANNOTATION_COLUMNS, POST_COLUMNS

_MAX_LISTED = 5


def _listing(values: list[object]) -> str:
    shown = ", ".join(repr(v) for v in values[:_MAX_LISTED])
    more = len(values) - _MAX_LISTED
    return f"{shown} (and {more} more)" if more > 0 else shown


def require_columns(table: pd.DataFrame, columns: tuple[str, ...], name: str, origin: str) -> None:
    """Raise when ``table`` lacks one of ``columns``."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataValidationError(
            f"{name} from {origin} is missing column(s) {missing}; found {list(table.columns)}. "
            f"The official ReDSM5 format has columns {list(columns)}: rename the columns of "
            f"that file or point the source at a folder in that format."
        )


def validate_raw(posts: pd.DataFrame, annotations: pd.DataFrame, origin: str) -> None:
    """Check the two tables against the ReDSM5 format; raise ``DataValidationError`` if not.

    Args:
        posts: ``post_id``, ``text``.
        annotations: ``post_id``, ``sentence_id``, ``sentence_text``, ``DSM5_symptom``,
            ``status``, ``explanation``.
        origin: where the tables came from, named in every error message.
    """
    require_columns(posts, POST_COLUMNS, "posts", origin)
    require_columns(annotations, ANNOTATION_COLUMNS, "annotations", origin)
    if posts.empty:
        raise DataValidationError(f"posts from {origin} has no rows: a source needs posts.")

    duplicated = posts.loc[posts["post_id"].duplicated(), "post_id"].tolist()
    if duplicated:
        raise DataValidationError(
            f"posts from {origin} has duplicate post_id values {_listing(duplicated)}: "
            f"each post must appear once; remove or merge the duplicates."
        )

    texts = posts["text"]
    empty = posts.loc[texts.isna() | (texts.astype(str).str.strip() == ""), "post_id"].tolist()
    if empty:
        raise DataValidationError(
            f"posts from {origin} has empty text for post_id {_listing(empty)}: "
            f"drop those posts or fill in their text."
        )

    symptoms = annotations["DSM5_symptom"].astype(str)
    unknown = sorted(set(symptoms) - SYMPTOM_NAMES)
    if unknown:
        raise DataValidationError(
            f"annotations from {origin} has unknown DSM5_symptom value(s) {_listing(unknown)}; "
            f"allowed: {sorted(SYMPTOM_NAMES)}. Fix the spelling (names are upper case with "
            f"underscores)."
        )

    status = pd.to_numeric(annotations["status"], errors="coerce")
    bad_status = annotations.loc[~status.isin([0, 1]), "sentence_id"].tolist()
    if bad_status:
        raise DataValidationError(
            f"annotations from {origin} has status values other than 0 or 1 for sentence_id "
            f"{_listing(bad_status)}: status is 1 for evidence of the symptom, 0 for an explicit "
            f"negative."
        )

    known = set(posts["post_id"])
    orphans = sorted(set(annotations["post_id"]) - known)
    if orphans:
        raise DataValidationError(
            f"annotations from {origin} refer to post_id(s) {_listing(orphans)} that are not in "
            f"the posts table: add those posts or drop their annotations."
        )

    sentences = annotations["sentence_text"]
    blank = annotations.loc[
        sentences.isna() | (sentences.astype(str).str.strip() == ""), "sentence_id"
    ].tolist()
    if blank:
        raise DataValidationError(
            f"annotations from {origin} has empty sentence_text for sentence_id "
            f"{_listing(blank)}: every annotation names its evidence sentence."
        )
