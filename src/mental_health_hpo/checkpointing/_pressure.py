"""Disk space: preflight estimates, free space, and the out-of-space error with its remedies."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from mental_health_hpo.checkpointing._errors import InsufficientDiskSpaceError
from mental_health_hpo.checkpointing._manifest import utc_now
from mental_health_hpo.checkpointing._retention import (
    OVERHEAD_BYTES,
    RetentionPolicy,
    estimate_retained_bytes,
)
from mental_health_hpo.workspace.atomic import atomic_write_bytes, remove_durably
from mental_health_hpo.workspace.layout import StudyLayout


@dataclass(frozen=True)
class DiskUsage:
    """Space on the filesystem holding a path."""

    total: int
    used: int
    free: int

    @property
    def free_percent(self) -> float:
        return 100.0 * self.free / self.total if self.total else 0.0


def disk_usage(path: str | Path) -> DiskUsage:
    """Usage of the filesystem of ``path`` (or of its nearest existing parent)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return DiskUsage(total=usage.total, used=usage.used, free=usage.free)


def tensor_bytes(obj: Any) -> int:
    """Bytes of every tensor inside nested dicts/lists/tuples."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, Mapping):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def estimate_checkpoint_bytes(
    model: torch.nn.Module | Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | None = None,
) -> int:
    """Model state + optimizer state + 1 MB: the size of one full checkpoint.

    Before the first optimizer step an Adam-family optimizer has no state yet, so its state is
    estimated as two moments per trainable parameter (one for momentum SGD).
    """
    state = model.state_dict() if isinstance(model, torch.nn.Module) else model
    weights = tensor_bytes(dict(state))
    optim = 0
    if optimizer is not None:
        optim = tensor_bytes(optimizer.state_dict().get("state", {}))
        if optim == 0:
            name = type(optimizer).__name__.lower()
            moments = 2 if "adam" in name else 1
            params = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
            optim = moments * sum(p.numel() * p.element_size() for p in params)
    return weights + optim + OVERHEAD_BYTES


def largest_artifacts(roots: Iterable[str | Path], limit: int = 5) -> list[tuple[str, int]]:
    """The biggest files under ``roots`` (path, size), largest first."""
    sizes: list[tuple[str, int]] = []
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = Path(dirpath) / name
                try:
                    sizes.append((str(path), path.stat().st_size))
                except OSError:
                    continue
    return sorted(sizes, key=lambda item: -item[1])[:limit]


def human_bytes(size: float) -> str:
    """1234567 -> '1.2 MB'."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


def insufficient_space_error(
    directory: str | Path,
    needed_bytes: int,
    scan_roots: Iterable[str | Path] | None = None,
    experiments_dir: str | Path | None = None,
) -> InsufficientDiskSpaceError:
    """The out-of-space error: usage, space needed, the largest artifacts, and commands that work
    as printed (this interpreter's absolute path, the real parameter key)."""
    usage = disk_usage(directory)
    roots = list(scan_roots or [directory])
    python = sys.executable or "python"
    kedro = Path(python).with_name("kedro")
    cleanup_root = Path(experiments_dir or Path(directory).parent).resolve()
    largest = largest_artifacts(roots)
    lines = [
        f"Not enough disk space for the next checkpoint in {directory}.",
        f"  disk usage: {human_bytes(usage.used)} used of {human_bytes(usage.total)}, "
        f"{human_bytes(usage.free)} free ({usage.free_percent:.1f}%)",
        f"  needed for the next checkpoint: {human_bytes(needed_bytes)} ({needed_bytes} bytes)",
        "  largest artifacts:",
        *[f"    {human_bytes(size):>10}  {path}" for path, size in largest],
        "  to make room (from the project folder):",
        f"    {python} -m mental_health_hpo.checkpointing.cleanup {cleanup_root} --apply"
        "   # remove orphans",
        f"    {kedro} run --pipelines hpo --params hpo.checkpointing.policy=minimal"
        "   # or aggressive; the same study continues",
        "    or lower hpo.checkpointing.overrides.keep_best_trials / keep_last_n / keep_best_k,",
        "    or free space on the disk, or point hpo.study.experiments_dir at a larger one.",
        "  Checkpoints already written were kept (never deleted to make room).",
    ]
    return InsufficientDiskSpaceError(
        "\n".join(lines), needed_bytes=needed_bytes, free_bytes=usage.free, largest=largest
    )


def preflight_check(
    directory: str | Path,
    full_bytes: int,
    policy: RetentionPolicy,
    weights_bytes: int | None = None,
) -> int:
    """Before training: raise the out-of-space error when what the policy retains cannot fit,
    so a study fails in seconds rather than at its first save.

    ``full_bytes`` comes from :func:`estimate_checkpoint_bytes`; returns the bytes needed.
    """
    needed = estimate_retained_bytes(
        full_bytes, weights_bytes if weights_bytes is not None else full_bytes // 3, policy
    )
    usage = disk_usage(directory)
    if usage.free < needed:
        raise insufficient_space_error(directory, needed)
    return needed


# Disk pressure: make room before a save, or fail with a message that says how.
#
# Before each save the controller checks that the checkpoint fits and leaves the free-space
# threshold of the policy. When it does not, it escalates, each step only inside this trial:
#
# 1. wait for the save in flight, then measure again;
# 2. drop every unprotected checkpoint of this trial (the newest resumable one and the best stay);
# 3. enter emergency retention for the whole study: a marker file tells every trial that opens
#    later, and the study-retention service, to keep one best checkpoint per trial and one best
#    trial. Sibling trials are pruned by that service under the study lock, never from here.
#
# If the checkpoint still does not fit, the save fails with :class:`InsufficientDiskSpaceError`
# and the checkpoints already written are kept. Emergency mode ends when the study-retention
# service finds the free space back above the threshold.
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
