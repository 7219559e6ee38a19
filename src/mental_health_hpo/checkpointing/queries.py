"""Reading what one trial has committed: its manifest, loads, and the best checkpoints."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from mental_health_hpo.checkpointing.errors import CheckpointError
from mental_health_hpo.checkpointing.layout import MANIFEST_NAME
from mental_health_hpo.checkpointing.manifest import (
    FLAG_BEST,
    CheckpointRecord,
    Manifest,
    MetricRecord,
)
from mental_health_hpo.checkpointing.options import CheckpointOptions
from mental_health_hpo.checkpointing.policy import RetentionPolicy
from mental_health_hpo.checkpointing.recovery import quarantine_record, read_or_rebuild
from mental_health_hpo.checkpointing.storage import Storage
from mental_health_hpo.checkpointing.verify import LoadedCheckpoint, load_newest_full, load_record


class CommittedCheckpoints:
    """Queries over a checkpoints folder's committed manifest; corrupt files are quarantined."""

    directory: Path
    storage: Storage
    options: CheckpointOptions
    policy: RetentionPolicy
    architecture: dict[str, Any] | None
    _commit_lock: threading.Lock

    def flush(self) -> None:
        return None

    def _new_manifest(self) -> Manifest:
        return Manifest(
            metric_name=self.options.metric_name,
            code_version=self.options.code_version,
            config_hash=self.options.config_hash,
            architecture=self.architecture,
        )

    def _manifest(self) -> Manifest:
        """The committed manifest; an unreadable one is set aside and rebuilt, never ignored."""
        return read_or_rebuild(self.storage, self._new_manifest(), self.policy)

    def load_latest(self) -> LoadedCheckpoint | None:
        """The newest valid full checkpoint; corrupt ones are quarantined with a warning."""
        self.flush()
        records = self._manifest().checkpoints
        return load_newest_full(self.storage, records, self.architecture, self._quarantine)

    def _quarantine(self, record: CheckpointRecord) -> None:
        with self._commit_lock:
            quarantine_record(self.storage, self._manifest(), record, self.policy)

    def load(self, checkpoint_id: str) -> LoadedCheckpoint:
        """Load a named checkpoint; raises :class:`CheckpointError` saying why it cannot."""
        self.flush()
        manifest = self._manifest()
        record = manifest.record(checkpoint_id)
        if record is None:
            known = [r.id for r in manifest.checkpoints]
            raise CheckpointError(
                f"checkpoint {checkpoint_id!r} is not in {self.storage.describe(MANIFEST_NAME)} "
                f"(committed: {known or 'none'})"
            )
        try:
            return load_record(self.storage, record, self.architecture, record.is_full)
        except CheckpointError as exc:
            raise type(exc)(f"cannot load checkpoint {checkpoint_id!r}: {exc}") from exc

    def records(self) -> list[CheckpointRecord]:
        """Committed checkpoint records, oldest first."""
        return sorted(self._manifest().checkpoints, key=lambda r: (r.step, r.epoch))

    def best(self) -> list[CheckpointRecord]:
        """The best checkpoint and its co-best ties."""
        return [r for r in self.records() if FLAG_BEST in r.flags]

    def history(self) -> list[MetricRecord]:
        """Every committed epoch's metrics, in order (the metrics journal)."""
        return list(self._manifest().history)

    def last_committed_step(self) -> int | None:
        """Step of the last committed journal entry, None before the first commit."""
        history = self.history()
        return history[-1].step if history else None
