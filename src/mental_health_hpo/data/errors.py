"""Errors that tell the user what was wrong with the data and how to fix it."""

from __future__ import annotations


class DataValidationError(ValueError):
    """The input tables break the ReDSM5 format; the message names the rows and the fix."""


class DatasetSourceError(RuntimeError):
    """A source could not be read: the message names the id, revision, splits and the fix."""


class DataConfigError(ValueError):
    """A ``data_ingest`` parameter is wrong; the message names the key, the value and the fix."""
