"""Exceptions of the checkpoint core: one type per failure a caller may want to tell apart."""

from __future__ import annotations


class CheckpointError(Exception):
    """Base class: a checkpoint could not be written, found, verified or loaded."""


class CheckpointIntegrityError(CheckpointError):
    """A file named by the manifest is missing, truncated or has the wrong SHA-256."""


class IncompatibleCheckpointError(CheckpointError):
    """The checkpoint was written for another architecture (names, shapes, dtypes, heads)."""


class UnsafeCheckpointError(CheckpointError):
    """The training state holds objects that ``torch.load(weights_only=True)`` refuses."""


class MetricNotFoundError(CheckpointError, KeyError):
    """The optimization metric is not among the logged metrics."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class PolicyError(ValueError):
    """A retention policy field is invalid; the message names the field."""


class AsyncSaveError(CheckpointError):
    """A background save failed; raised at the next save, flush or close."""


class InsufficientDiskSpaceError(CheckpointError, OSError):
    """The next checkpoint cannot fit even after aggressive pruning: the study must stop."""

    def __init__(
        self,
        message: str,
        *,
        needed_bytes: int = 0,
        free_bytes: int = 0,
        largest: list[tuple[str, int]] | None = None,
    ) -> None:
        super().__init__(message)
        self.needed_bytes = needed_bytes
        self.free_bytes = free_bytes
        self.largest = largest or []

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
