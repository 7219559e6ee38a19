"""The per-trial manifest: the commit record and metrics journal of a trial's checkpoints.

A checkpoint not named in ``manifest.json`` does not exist. The manifest is replaced atomically and
only after every file it names is durable, so reading it always gives a consistent state.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mental_health_hpo.checkpointing._errors import CheckpointError
from mental_health_hpo.crash_points import crash_point
from mental_health_hpo.workspace.layout import (
    MANIFEST_NAME,
    PREVIOUS_MANIFEST_NAME,
    STATE_FILE,
)
from mental_health_hpo.workspace.layout import WEIGHTS_FILE as WEIGHTS_FILE
from mental_health_hpo.workspace.layout import checkpoint_id as checkpoint_id
from mental_health_hpo.workspace.storage import Storage, as_storage

logger = logging.getLogger(__name__)

MANIFEST_VERSION = 1
KIND_FULL = "full"
KIND_WEIGHTS = "weights"
FLAG_LAST = "last"
FLAG_BEST = "best"
FLAG_CO_BEST = "co_best"


def manifest_kind(training_state: object | None) -> str:
    """A checkpoint with training state can resume; one without holds weights only."""
    return KIND_FULL if training_state is not None else KIND_WEIGHTS


def utc_now() -> str:
    """ISO-8601 UTC timestamp with microseconds (journal entries keep it for idempotent replay)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class FileEntry:
    """One file of a checkpoint: path relative to the checkpoints directory, digest, size."""

    path: str
    sha256: str
    size: int


@dataclass
class CheckpointRecord:
    """One committed checkpoint."""

    id: str
    epoch: int
    step: int
    metrics: dict[str, float]
    kind: str
    files: dict[str, FileEntry]
    created_at: str
    flags: list[str] = field(default_factory=list)
    code_version: str = ""
    config_hash: str = ""
    architecture_hash: str = ""

    @property
    def size(self) -> int:
        """Bytes of all files of this checkpoint."""
        return sum(entry.size for entry in self.files.values())

    @property
    def is_full(self) -> bool:
        """True when the record can resume training (weights + training state)."""
        return self.kind == KIND_FULL and STATE_FILE in self.files

    def metric(self, name: str) -> float:
        """The record's value of ``name``, -inf when absent or NaN (never best)."""
        value = self.metrics.get(name)
        if value is None:
            return float("-inf")
        value = float(value)
        return float("-inf") if value != value else value

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckpointRecord:
        files = {key: FileEntry(**value) for key, value in data.get("files", {}).items()}
        return cls(
            id=str(data["id"]),
            epoch=int(data["epoch"]),
            step=int(data["step"]),
            metrics={k: float(v) for k, v in data.get("metrics", {}).items()},
            kind=str(data["kind"]),
            files=files,
            created_at=str(data.get("created_at", "")),
            flags=list(data.get("flags", [])),
            code_version=str(data.get("code_version", "")),
            config_hash=str(data.get("config_hash", "")),
            architecture_hash=str(data.get("architecture_hash", "")),
        )


@dataclass(frozen=True)
class MetricRecord:
    """One committed epoch in the metrics journal (whether or not its checkpoint survived)."""

    epoch: int
    step: int
    metrics: dict[str, float]
    timestamp: str
    checkpoint_id: str | None = None

    @property
    def timestamp_ms(self) -> int:
        """Milliseconds since the epoch, as MLflow wants them (stable across replays)."""
        return int(datetime.fromisoformat(self.timestamp).timestamp() * 1000)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MetricRecord:
        return cls(
            epoch=int(data["epoch"]),
            step=int(data["step"]),
            metrics={k: float(v) for k, v in data.get("metrics", {}).items()},
            timestamp=str(data["timestamp"]),
            checkpoint_id=data.get("checkpoint_id"),
        )


@dataclass
class Manifest:
    """Everything committed for one trial."""

    metric_name: str
    code_version: str = ""
    config_hash: str = ""
    architecture: dict[str, Any] | None = None
    checkpoints: list[CheckpointRecord] = field(default_factory=list)
    history: list[MetricRecord] = field(default_factory=list)
    finished: bool = False
    updated_at: str = ""
    version: int = MANIFEST_VERSION

    def journal(self, entry: MetricRecord) -> bool:
        """Append ``entry`` unless its step is journaled already (and so maybe published): an
        epoch trained again after a restart never publishes a step a second time."""
        if self.history and entry.step <= self.history[-1].step:
            logger.info("step %d was journaled before; keeping its first values", entry.step)
            return False
        self.history.append(entry)
        return True

    def record(self, ckpt_id: str) -> CheckpointRecord | None:
        """The record named ``ckpt_id``, or None."""
        return next((r for r in self.checkpoints if r.id == ckpt_id), None)

    @property
    def total_size(self) -> int:
        return sum(r.size for r in self.checkpoints)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "metric_name": self.metric_name,
            "code_version": self.code_version,
            "config_hash": self.config_hash,
            "architecture": self.architecture,
            "finished": self.finished,
            "updated_at": self.updated_at,
            "checkpoints": [r.to_json() for r in self.checkpoints],
            "history": [m.to_json() for m in self.history],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            version=int(data.get("version", MANIFEST_VERSION)),
            metric_name=str(data.get("metric_name", "")),
            code_version=str(data.get("code_version", "")),
            config_hash=str(data.get("config_hash", "")),
            architecture=data.get("architecture"),
            finished=bool(data.get("finished", False)),
            updated_at=str(data.get("updated_at", "")),
            checkpoints=[CheckpointRecord.from_json(r) for r in data.get("checkpoints", [])],
            history=[MetricRecord.from_json(m) for m in data.get("history", [])],
        )


def manifest_path(directory: str | Path) -> Path:
    """The manifest's path in a local checkpoints folder (study retention stats it)."""
    return Path(directory) / MANIFEST_NAME


def read_manifest(location: Storage | str | Path) -> Manifest | None:
    """The committed manifest of a checkpoints folder; None when nothing was committed.

    Raises :class:`CheckpointError` when the object exists but cannot be parsed.
    """
    storage = as_storage(location)
    try:
        raw = storage.read(MANIFEST_NAME)
    except FileNotFoundError:
        return None
    try:
        return Manifest.from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"manifest {storage.describe(MANIFEST_NAME)} is unreadable: {exc}"
        ) from exc


def write_manifest(location: Storage | str | Path, manifest: Manifest) -> None:
    """Commit ``manifest`` atomically; call only once every object it names is durable.

    The one before it is kept as ``manifest.prev.json`` first, so an unreadable manifest (a bad
    disk block, a hand edit) can be rebuilt from the one before it.
    """
    storage = as_storage(location)
    if not manifest.finished:
        crash_point("manifest_built")
    manifest.updated_at = utc_now()
    payload = json.dumps(manifest.to_json(), indent=1, sort_keys=False).encode()
    with contextlib.suppress(FileNotFoundError):
        storage.copy(MANIFEST_NAME, PREVIOUS_MANIFEST_NAME)
    staged = storage.stage(MANIFEST_NAME)
    try:
        staged.write(payload)
        if not manifest.finished:
            crash_point("running_manifest_write")
        staged.commit()
    except BaseException:
        staged.discard()
        raise
