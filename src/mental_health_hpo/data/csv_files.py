"""Reading a ``csv`` source folder, with errors that name the file, what was expected and the fix.

Why a module of its own: pandas reports an empty file, a wrong encoding or a torn quote as
``EmptyDataError``/``UnicodeDecodeError``/``ParserError`` with no path and no hint, and a user
pointing ``data_ingest.source.csv.path`` at a file, or at the post-level ReDSM5 variant, got a
"file not found" for a path that does not exist. Every failure here is a
:class:`DatasetSourceError` whose message says which file, what the project expects and how to
fix it (:class:`DataValidationError` when the file reads but its columns are wrong).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mental_health_hpo.data.errors import DatasetSourceError, DataValidationError
from mental_health_hpo.data.schema import (
    ANNOTATION_COLUMNS,
    ANNOTATIONS_FILE,
    POST_COLUMNS,
    POST_LEVEL_COLUMNS,
    POSTS_FILE,
)

_KEY = "data_ingest.source.csv.path"
_FORMAT = (
    f"A csv source is a folder holding {POSTS_FILE} (columns {list(POST_COLUMNS)}) and "
    f"{ANNOTATIONS_FILE} (columns {list(ANNOTATION_COLUMNS)}), UTF-8, comma-separated, with a "
    f"header line, as in the official ReDSM5 release and the public sample"
)


def _post_level_hint(columns: list[str]) -> str:
    if set(POST_LEVEL_COLUMNS) <= set(columns):
        return (
            f" Its columns {columns} are those of the post-level ReDSM5 variant (one row per "
            f"post with a labels list and one explanation). That variant has no sentence-level "
            f"evidence, which the evidence-binding head trains on, so it is not a supported "
            f"source: use the sentence-level release ({POSTS_FILE} + {ANNOTATIONS_FILE}), for "
            f"example with data_ingest.source.kind: hf."
        )
    return ""


def _header_of(path: Path) -> list[str]:
    """The header line of a csv file, or [] when it cannot be read as text."""
    try:
        with path.open(encoding="utf-8") as handle:
            line = handle.readline()
    except (OSError, UnicodeDecodeError):
        return []
    return [part.strip().strip('"') for part in line.rstrip("\r\n").split(",") if part.strip()]


def _check_folder(folder: Path) -> None:
    if folder.is_file():
        raise DatasetSourceError(
            f"{_KEY} is {folder}, which is a file; a folder was expected. {_FORMAT}. Fix: set "
            f"{_KEY} to the folder that holds the two files (here perhaps {folder.parent})."
            + _post_level_hint(_header_of(folder))
        )
    if not folder.is_dir():
        raise DatasetSourceError(
            f"{_KEY} is {folder}, which does not exist. {_FORMAT}. Fix: download the data "
            f"into that folder or set {_KEY} to the folder that holds the files."
        )


def _read(path: Path, what: str, columns: tuple[str, ...]) -> pd.DataFrame:
    expected = f"{what} file {path}: expected a UTF-8 CSV with a header line {list(columns)}"
    if not path.is_file():
        others = sorted(p.name for p in path.parent.glob("*.csv"))
        hints = "".join(_post_level_hint(_header_of(path.parent / name)) for name in others[:3])
        raise DatasetSourceError(
            f"{what} file not found: {path} (csv files in that folder: {others or 'none'}). "
            f"{_FORMAT}. Fix: set {_KEY} to such a folder.{hints}"
        )
    try:
        table = pd.read_csv(path, dtype={"post_id": str, "sentence_id": str}, keep_default_na=False)
    except pd.errors.EmptyDataError as error:
        raise DatasetSourceError(
            f"{expected}, but the file is empty ({error}). Fix: copy the file again from the "
            f"release; an interrupted download often leaves an empty file."
        ) from error
    except UnicodeDecodeError as error:
        raise DatasetSourceError(
            f"{expected}, but byte {error.start} ({error.object[error.start : error.start + 1]!r})"
            f" is not UTF-8: the file is binary or in another encoding. Fix: re-save it as UTF-8 "
            f"(for example `iconv -f latin1 -t utf-8 {path.name} > fixed.csv`), or point "
            f"{_KEY} at the right folder."
        ) from error
    except pd.errors.ParserError as error:
        raise DatasetSourceError(
            f"{expected}, but it is not valid CSV: {error}. An unterminated quote (a text with "
            f'an odd number of ") makes the parser read to the end of the file. Fix: quote '
            f'every text field and double quotes inside it ("" for "), as a CSV writer such as '
            f"pandas.DataFrame.to_csv does."
        ) from error
    missing = [c for c in columns if c not in table.columns]
    if missing:
        found = [str(c) for c in table.columns]
        raise DataValidationError(
            f"{expected}, but it is missing column(s) {missing}; found {found}. Fix: rename the "
            f"columns of that file or point {_KEY} at a folder in the official format."
            + _post_level_hint(found)
        )
    return table


def read_csv_folder(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Posts and annotations of a csv source folder (the official ReDSM5 format), checked."""
    _check_folder(folder)
    posts = _read(folder / POSTS_FILE, "posts", POST_COLUMNS)
    annotations = _read(folder / ANNOTATIONS_FILE, "annotations", ANNOTATION_COLUMNS)
    return posts, annotations
