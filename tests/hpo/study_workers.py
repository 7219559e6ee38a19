"""Study workers built the way production builds them: ``params:hpo`` through ``StudySetup``.

The tests run the runner, hooks, study retention and coordination of a real worker; only the
objective (and, where a test looks at them, the tracking calls) is theirs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial

from mental_health_hpo.hpo.coordination import Coordination
from mental_health_hpo.hpo.setup import StudySetup
from mental_health_hpo.hpo.tally import Progress
from mental_health_hpo.hpo.trial_folder import TrialFolder

X_SPACE: dict[str, Any] = {"x": {"type": "float", "low": 0.0, "high": 1.0}}


def study_setup(
    root: Path,
    *,
    space: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
    **study: Any,
) -> StudySetup:
    """``StudySetup.from_params`` of a study under ``root`` (sqlite in ``root`` by default)."""
    params = {
        "study": {"storage": "sqlite:///optuna.db", **study},
        "search_space": space if space is not None else X_SPACE,
        "base": base or {},
    }
    return StudySetup.from_params(params, root)


@dataclass
class RecordingTracking:
    """A :class:`~mental_health_hpo.hpo.setup.StudyTracking` that remembers what it was told."""

    publisher: Any = None
    session_run_id: str | None = None
    progressed: list[Progress] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    starts: int = 0

    def started(self, coordination: Coordination, study_dir: Path) -> None:
        self.starts += 1

    def trial_ended(self, frozen: FrozenTrial, folder: TrialFolder) -> None:
        self.ended.append(frozen.number)

    def progress(self, progress: Progress) -> None:
        self.progressed.append(progress)

    def flush(self) -> None:
        return None

    def study_complete(
        self, coordination: Coordination, study_dir: Path, best: float | None
    ) -> None:
        return None
