"""Disk pressure: make room before a save, or fail with a message that says how.

Before each save the controller checks that the checkpoint fits and leaves the free-space
threshold of the policy. When it does not, it escalates, each step only inside this trial:

1. wait for the save in flight, then measure again;
2. drop every unprotected checkpoint of this trial (the newest resumable one and the best stay);
3. enter emergency retention for the whole study: a marker file tells every trial that opens
   later, and the study-retention service, to keep one best checkpoint per trial and one best
   trial. Sibling trials are pruned by that service under the study lock, never from here.

If the checkpoint still does not fit, the save fails with :class:`InsufficientDiskSpaceError`
and the checkpoints already written are kept. Emergency mode ends when the study-retention
service finds the free space back above the threshold.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from mental_health_hpo.checkpointing.atomic import atomic_write_bytes, remove_durably
from mental_health_hpo.checkpointing.disk import disk_usage, insufficient_space_error
from mental_health_hpo.checkpointing.layout import StudyLayout
from mental_health_hpo.checkpointing.manifest import utc_now

logger = logging.getLogger(__name__)


class DiskGuard(Protocol):
    def ensure_space(
        self, needed: int, flush: Callable[[], None], prune: Callable[[], int]
    ) -> bool:
        """Make room for ``needed`` bytes; True when emergency retention is now in force."""
        ...


class UnwatchedDisk:
    """No checks: for callers that manage space themselves (benchmarks, a scratch folder)."""

    def ensure_space(
        self, needed: int, flush: Callable[[], None], prune: Callable[[], int]
    ) -> bool:
        return False


def in_emergency(study: StudyLayout | None) -> bool:
    return study is not None and study.pressure_marker.exists()


def enter_emergency(study: StudyLayout | None) -> None:
    if study is not None and not study.pressure_marker.exists():
        payload = json.dumps({"since": utc_now()}).encode() + b"\n"
        atomic_write_bytes(study.pressure_marker, payload)
        logger.warning("study %s enters emergency retention (disk pressure)", study.path)


def leave_emergency_if_relieved(study: StudyLayout, threshold_percent: float) -> bool:
    """Remove the marker once free space is back above the threshold; True when it did."""
    if not study.pressure_marker.exists():
        return False
    if disk_usage(study.folder).free_percent <= threshold_percent:
        return False
    remove_durably(study.pressure_marker)
    logger.info(
        "study %s: free space is back above %s%%; normal retention", study.path, threshold_percent
    )
    return True


class DiskWatch:
    """The escalation above, for one trial's checkpoints folder."""

    def __init__(
        self, directory: Path, threshold_percent: float, study: StudyLayout | None
    ) -> None:
        self.directory = directory
        self.threshold_percent = threshold_percent
        self.study = study

    def _fits(self, needed: int) -> tuple[bool, bool]:
        """(fits at all, fits and stays above the free-space threshold)."""
        usage = disk_usage(self.directory)
        threshold = usage.total * self.threshold_percent / 100
        return usage.free >= needed, usage.free - needed >= threshold

    def ensure_space(
        self, needed: int, flush: Callable[[], None], prune: Callable[[], int]
    ) -> bool:
        fits, comfortable = self._fits(needed)
        if comfortable:
            return False
        flush()  # measure without a save in flight
        fits, comfortable = self._fits(needed)
        if comfortable:
            return False
        logger.warning(
            "free space below %s%% in %s: pruning this trial",
            self.threshold_percent,
            self.directory,
        )
        prune()
        fits, comfortable = self._fits(needed)
        emergency = not comfortable
        if emergency:
            enter_emergency(self.study)
        if not fits:
            scan = [self.study.folder] if self.study else [self.directory]
            experiments = self.study.folder.parent if self.study else self.directory.parent
            raise insufficient_space_error(self.directory, needed, scan, experiments)
        if emergency:
            logger.warning("saving below the free-space threshold (%s)", self.directory)
        return emergency
