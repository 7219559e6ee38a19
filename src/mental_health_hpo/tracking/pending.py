"""Runs and run updates the tracking store could not take yet, kept on disk until it can.

Why: a trial that starts while the MLflow server is down used to get no run at all
(``mlflow_run_id: null``), so its whole journal was lost although the server came back minutes
later, and a run that could not be closed during an outage stayed RUNNING for good. Now:

- such a trial gets a *pending reference* (``pending-<32 hex>``) in place of a run id; it is
  stored in ``trial.json`` like a run id, metrics are buffered under it, and the run is created
  (with the trial's name, params, tags and parent) as soon as the store answers; the reference
  then resolves to the real run id, in this process and in any later one;
- a tag update or a close that fails is remembered per run (or reference) and applied later.

The file (``mlflow_pending_runs.json`` next to the metrics buffer) is JSON, file-locked and
written atomically, since a kill may land at any moment and two processes may share a study.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from mental_health_hpo.workspace.atomic import atomic_write_bytes

PENDING_PREFIX = "pending-"


def is_pending(run_ref: str | None) -> bool:
    """True for a reference that stands for a run not created yet."""
    return bool(run_ref) and str(run_ref).startswith(PENDING_PREFIX)


@dataclass
class PendingRun:
    """Everything needed to create the run later, and the run id once it exists."""

    experiment_id: str
    run_name: str
    tags: dict[str, str]
    params: dict[str, str]
    parent_run_id: str | None
    start_time_ms: int
    run_id: str | None = None
    create_attempts: int = 0


@dataclass
class PendingUpdate:
    """Tags to set and the close to apply to one run (or pending reference)."""

    tags: dict[str, str] = field(default_factory=dict)
    status: str | None = None
    end_time_ms: int | None = None


class PendingRuns:
    """The on-disk registry of pending runs and pending run updates of one study."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = FileLock(str(path) + ".lock")

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"runs": {}, "updates": {}}
        except json.JSONDecodeError:  # cannot happen with atomic writes; never lose the study
            return {"runs": {}, "updates": {}}
        return {"runs": data.get("runs", {}), "updates": data.get("updates", {})}

    def _store(self, data: dict[str, Any]) -> None:
        # The project's atomic write: a kill leaves a ``.tmp-`` file that the sweeps recognise.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, json.dumps(data, indent=1, sort_keys=True).encode())

    def _change(self, edit: Callable[[dict[str, Any]], Any]) -> Any:
        with self._lock:
            data = self._load()
            result = edit(data)
            if data["runs"] or data["updates"]:
                self._store(data)
            else:
                self.path.unlink(missing_ok=True)
            return result

    def reserve(self, run: PendingRun) -> str:
        """A new pending reference for ``run``."""
        ref = f"{PENDING_PREFIX}{uuid.uuid4().hex}"
        self._change(lambda data: data["runs"].__setitem__(ref, asdict(run)))
        return ref

    def get(self, ref: str) -> PendingRun | None:
        with self._lock:
            entry = self._load()["runs"].get(ref)
        return PendingRun(**entry) if entry else None

    def resolve(self, ref: str) -> str | None:
        """The run id ``ref`` stands for, once the run was created."""
        run = self.get(ref)
        return run.run_id if run else None

    def created(self, ref: str, run_id: str) -> None:
        """Record that ``ref``'s run now exists as ``run_id`` (the reference keeps resolving)."""

        def edit(data: dict[str, Any]) -> None:
            if ref in data["runs"]:
                data["runs"][ref]["run_id"] = run_id

        self._change(edit)

    def attempting(self, ref: str) -> None:
        """Count a create attempt: after one, a run for ``ref`` may exist though it timed out."""

        def edit(data: dict[str, Any]) -> None:
            if ref in data["runs"]:
                data["runs"][ref]["create_attempts"] = (
                    data["runs"][ref].get("create_attempts", 0) + 1
                )

        self._change(edit)

    def forget(self, ref: str) -> None:
        """Drop a reference nobody stored (its run was created at the first try)."""
        self._change(lambda data: data["runs"].pop(ref, None))

    def retried_runs(self) -> list[tuple[str, PendingRun]]:
        """Created runs whose creation was tried more than once: a late twin may exist."""
        with self._lock:
            runs = self._load()["runs"]
        return [
            (ref, PendingRun(**e))
            for ref, e in sorted(runs.items())
            if e.get("run_id") and e.get("create_attempts", 0) > 1
        ]

    def runs_to_create(self) -> list[tuple[str, PendingRun]]:
        with self._lock:
            runs = self._load()["runs"]
        return [(ref, PendingRun(**e)) for ref, e in sorted(runs.items()) if not e.get("run_id")]

    def defer(
        self,
        run_ref: str,
        tags: Mapping[str, str] | None = None,
        status: str | None = None,
        end_time_ms: int | None = None,
    ) -> None:
        """Remember tags and/or a close for ``run_ref`` (merged with what is already there)."""

        def edit(data: dict[str, Any]) -> None:
            update = data["updates"].setdefault(run_ref, asdict(PendingUpdate()))
            update["tags"].update(dict(tags or {}))
            if status is not None:
                update["status"], update["end_time_ms"] = status, end_time_ms

        self._change(edit)

    def updates(self) -> list[tuple[str, PendingUpdate]]:
        with self._lock:
            updates = self._load()["updates"]
        return [(ref, PendingUpdate(**u)) for ref, u in sorted(updates.items())]

    def applied(self, run_ref: str, update: PendingUpdate) -> None:
        """Drop ``update`` of ``run_ref``, unless it was changed since it was read."""

        def edit(data: dict[str, Any]) -> None:
            if data["updates"].get(run_ref) == asdict(update):
                del data["updates"][run_ref]

        self._change(edit)
