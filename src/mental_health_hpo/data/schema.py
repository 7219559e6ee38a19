"""Column names of the official ReDSM5 file format."""

from __future__ import annotations

from typing import Final

POSTS_FILE: Final[str] = "redsm5_posts.csv"
ANNOTATIONS_FILE: Final[str] = "redsm5_annotations.csv"

POST_COLUMNS: Final[tuple[str, ...]] = ("post_id", "text")
ANNOTATION_COLUMNS: Final[tuple[str, ...]] = (
    "post_id",
    "sentence_id",
    "sentence_text",
    "DSM5_symptom",
    "status",
    "explanation",
)

# The post-level variant of ReDSM5 (one row per post, a labels list): recognised only to name it
# in the error, since it has no sentence-level evidence.
POST_LEVEL_COLUMNS: Final[tuple[str, ...]] = ("text", "labels", "explanation")
