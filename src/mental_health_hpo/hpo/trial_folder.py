"""One folder per trial and its lifecycle record.

``experiments/study_<id>/trial_<number>/`` holds ``checkpoints/``, ``logs/``, ``trial.json`` (the
lifecycle: queued, preparing, running, finishing, then completed, failed or pruned, with times,
the MLflow run id and the error of a failed trial) and ``logs/work.jsonl`` (which process trained
which epoch). Who owns a running trial is not recorded here but in the study database (a lease,
see :mod:`mental_health_hpo.hpo.leases`), which holds across hosts.

In a study whose experiments tree is a bucket, ``trial.json`` and ``checkpoints/`` are keys of
the bucket (read and written through the storage seam), while ``logs/`` stay on the worker's
local disk (``local_dir``: under ``hpo.study.cache_dir``), as does the cache of the running trial's
checkpoint before its upload.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from mental_health_hpo.ops.locations import Location
from mental_health_hpo.workspace import Storage, checkpoint_store, storage_at
from mental_health_hpo.workspace.layout import (
    CHECKPOINTS_DIRNAME,
    LOGS_DIRNAME,
    TRIAL_RECORD_NAME,
    WORK_LOG_NAME,
    StudyLayout,
    TrialLayout,
)

LifecycleState = Literal[
    "queued", "preparing", "running", "finishing", "completed", "failed", "pruned"
]
FINAL_STATES: frozenset[str] = frozenset({"completed", "failed", "pruned"})


@dataclass(frozen=True)
class TrialFolder:
    """Paths and lifecycle of one trial: its shared files at ``path`` (a folder or a bucket
    prefix), its local ones (logs, the checkpoint cache) under ``local_dir``."""

    path: Location
    number: int
    local_dir: Path

    @classmethod
    def of(cls, study_dir: Location, number: int, work_dir: Path | None = None) -> TrialFolder:
        """``work_dir``: this worker's local folder of the study (default: the study folder)."""
        layout = StudyLayout(study_dir).trial(number)
        local = work_dir if work_dir is not None else StudyLayout(study_dir).folder
        folder = cls(layout.path, number, local / layout.trial_id)
        if isinstance(folder.path, Path):
            (folder.path / CHECKPOINTS_DIRNAME).mkdir(parents=True, exist_ok=True)
        folder.logs.mkdir(parents=True, exist_ok=True)
        return folder

    @property
    def layout(self) -> TrialLayout:
        return TrialLayout(self.path)

    @property
    def trial_id(self) -> str:
        return self.layout.trial_id

    @property
    def checkpoints(self) -> Location:
        return self.layout.checkpoints

    @property
    def logs(self) -> Path:
        return self.local_dir / LOGS_DIRNAME

    @property
    def record_path(self) -> Location:
        return self.layout.record

    @property
    def storage(self) -> Storage:
        """The trial's shared files (``trial.json``, ``checkpoints/``) through the seam."""
        return storage_at(self.path)

    def open_checkpoints(self) -> AbstractContextManager[Path | Storage]:
        """What the trial's checkpoint manager writes to while it trains: the checkpoints
        folder, or, in a bucket, an object store cached under ``local_dir``, uploaded and
        removed when the block ends (see ``checkpoint_store``)."""
        return checkpoint_store(self.checkpoints, self.local_dir / "checkpoints-cache")

    def read(self) -> dict[str, Any]:
        """The lifecycle record; empty before the trial was first prepared."""
        try:
            data = self.storage.read(TRIAL_RECORD_NAME)
        except FileNotFoundError:
            return {}
        return dict(json.loads(data.decode("utf-8")))

    def update(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into the record, durably (one atomic write, on either backend)."""
        record = {**self.read(), **fields, "number": self.number, "trial_id": self.trial_id}
        payload = json.dumps(record, indent=2, sort_keys=True, default=str).encode()
        self.storage.put(TRIAL_RECORD_NAME, payload)
        return record

    def transition(self, state: LifecycleState, **fields: Any) -> dict[str, Any]:
        """Record a lifecycle state with its time."""
        record = self.read()
        history = list(record.get("history", []))
        history.append({"state": state, "at": datetime.now(UTC).isoformat()})
        return self.update(state=state, history=history, **fields)

    @property
    def work_log(self) -> Path:
        return self.logs / WORK_LOG_NAME

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
