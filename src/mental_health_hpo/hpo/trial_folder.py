"""One folder per trial and its lifecycle record.

``experiments/study_<id>/trial_<number>/`` holds ``checkpoints/``, ``logs/``, ``trial.json`` (the
lifecycle: queued, preparing, running, finishing, then completed, failed or pruned, with times,
the MLflow run id and the error of a failed trial) and ``logs/work.jsonl`` (which process trained
which epoch). Who owns a running trial is not recorded here but in the study database (a lease,
see :mod:`mental_health_hpo.hpo.leases`), which holds across hosts.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from mental_health_hpo.workspace.atomic import atomic_write_bytes
from mental_health_hpo.workspace.layout import StudyLayout, TrialLayout

LifecycleState = Literal[
    "queued", "preparing", "running", "finishing", "completed", "failed", "pruned"
]
FINAL_STATES: frozenset[str] = frozenset({"completed", "failed", "pruned"})


@dataclass(frozen=True)
class TrialFolder:
    """Paths and lifecycle of one trial."""

    path: Path
    number: int

    @classmethod
    def of(cls, study_dir: Path, number: int) -> TrialFolder:
        folder = cls(StudyLayout(study_dir).trial(number).path, number)
        folder.checkpoints.mkdir(parents=True, exist_ok=True)
        folder.logs.mkdir(parents=True, exist_ok=True)
        return folder

    @property
    def layout(self) -> TrialLayout:
        return TrialLayout(self.path)

    @property
    def trial_id(self) -> str:
        return self.layout.trial_id

    @property
    def checkpoints(self) -> Path:
        return self.layout.checkpoints

    @property
    def logs(self) -> Path:
        return self.layout.logs

    @property
    def record_path(self) -> Path:
        return self.layout.record

    def read(self) -> dict[str, Any]:
        """The lifecycle record; empty before the trial was first prepared."""
        if not self.record_path.exists():
            return {}
        return dict(json.loads(self.record_path.read_text(encoding="utf-8")))

    def update(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into the record, durably."""
        record = {**self.read(), **fields, "number": self.number, "trial_id": self.trial_id}
        payload = json.dumps(record, indent=2, sort_keys=True, default=str).encode()
        atomic_write_bytes(self.record_path, payload)
        return record

    def transition(self, state: LifecycleState, **fields: Any) -> dict[str, Any]:
        """Record a lifecycle state with its time."""
        record = self.read()
        history = list(record.get("history", []))
        history.append({"state": state, "at": datetime.now(UTC).isoformat()})
        return self.update(state=state, history=history, **fields)

    @property
    def work_log(self) -> Path:
        return self.layout.work_log

    def note_work(self, event: str, **fields: Any) -> None:
        """Append who worked on the trial, where and when: ``logs/work.jsonl``.

        One short line per event with O_APPEND; only the trial's lease holder writes it, so
        with many workers it shows which host and process trained each epoch.
        """
        line = {
            "event": event,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "at": time.time(),
            **fields,
        }
        with self.work_log.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, default=str) + "\n")

    def work(self) -> list[dict[str, Any]]:
        if not self.work_log.exists():
            return []
        lines = self.work_log.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
