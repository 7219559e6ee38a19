"""Verified loads: SHA-256, size and architecture are checked before anything is deserialized.

Files are hashed in 4 MB chunks (never read whole into memory), then loaded: the weights through
safetensors, whose tensors are memory-mapped views of the file, the training state with
``torch.load(weights_only=True)``, so a planted pickle payload is refused, never executed. A
verified load thus adds at most one copy of what it returns. The file's identity (inode, size,
modification time) is compared before hashing and after loading, so a file swapped between the
check and the load is refused too.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as load_safetensors_file

from mental_health_hpo.checkpointing.errors import (
    CheckpointError,
    CheckpointIntegrityError,
    IncompatibleCheckpointError,
)
from mental_health_hpo.checkpointing.hashing import sha256_file
from mental_health_hpo.checkpointing.layout import STATE_FILE, WEIGHTS_FILE
from mental_health_hpo.checkpointing.manifest import CheckpointRecord
from mental_health_hpo.checkpointing.signature import (
    architecture_signature,
    signature_differences,
)

logger = logging.getLogger(__name__)


@dataclass
class LoadedCheckpoint:
    """A verified checkpoint: weights, training state (None when weights-only), its record."""

    weights: dict[str, torch.Tensor]
    training_state: dict[str, Any] | None
    record: CheckpointRecord
    path: Path


def _identity(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def verify_file(
    directory: Path, record: CheckpointRecord, name: str
) -> tuple[Path, tuple[int, int, int]]:
    """The path of one file of ``record`` after checking its size and SHA-256, and its identity."""
    entry = record.files.get(name)
    if entry is None:
        raise CheckpointIntegrityError(f"{record.id}: manifest names no {name}")
    path = directory / entry.path
    try:
        identity = _identity(path)
    except FileNotFoundError as exc:
        raise CheckpointIntegrityError(f"{record.id}: {path} is missing") from exc
    if identity[1] != entry.size:
        raise CheckpointIntegrityError(
            f"{record.id}: {path} has {identity[1]} bytes, manifest says {entry.size} (truncated?)"
        )
    digest = sha256_file(path)
    if digest != entry.sha256:
        raise CheckpointIntegrityError(
            f"{record.id}: {path} SHA-256 {digest[:12]}... != manifest {entry.sha256[:12]}..."
        )
    return path, identity


def _unchanged(record: CheckpointRecord, path: Path, identity: tuple[int, int, int]) -> None:
    try:
        now = _identity(path)
    except FileNotFoundError as exc:
        raise CheckpointIntegrityError(f"{record.id}: {path} vanished while loading") from exc
    if now != identity:
        raise CheckpointIntegrityError(f"{record.id}: {path} changed while it was being loaded")


def check_architecture(
    record: CheckpointRecord,
    expected: Mapping[str, Any] | None,
    weights: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Raise :class:`IncompatibleCheckpointError` when the checkpoint does not fit ``expected``."""
    if not expected:
        return
    if weights is not None:
        actual = architecture_signature(weights, expected.get("head_types"))
        diffs = signature_differences(expected, actual)
        if diffs:
            raise IncompatibleCheckpointError(
                f"{record.id}: architecture differs: " + "; ".join(diffs)
            )
    expected_hash = expected.get("hash")
    if record.architecture_hash and expected_hash and record.architecture_hash != expected_hash:
        raise IncompatibleCheckpointError(
            f"{record.id}: written for architecture {record.architecture_hash[:12]}..., "
            f"this model is {str(expected_hash)[:12]}... (parameters or head types differ)"
        )


def load_record(
    directory: Path,
    record: CheckpointRecord,
    architecture: Mapping[str, Any] | None = None,
    with_state: bool = True,
) -> LoadedCheckpoint:
    """Verify then load one checkpoint of the checkpoints ``directory``."""
    check_architecture(record, architecture)
    weights_path, weights_identity = verify_file(directory, record, WEIGHTS_FILE)
    state_file = verify_file(directory, record, STATE_FILE) if with_state else None
    try:
        weights = load_safetensors_file(str(weights_path))
    except (SafetensorError, ValueError, OSError) as exc:
        raise CheckpointIntegrityError(f"{record.id}: weights unreadable: {exc}") from exc
    _unchanged(record, weights_path, weights_identity)
    check_architecture(record, architecture, weights)
    state = None
    if state_file is not None:
        state_path, state_identity = state_file
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
            raise CheckpointIntegrityError(
                f"{record.id}: training state refused by torch.load(weights_only=True): {exc}"
            ) from exc
        _unchanged(record, state_path, state_identity)
        if not isinstance(state, dict):
            raise CheckpointIntegrityError(f"{record.id}: training state is not a dict")
    return LoadedCheckpoint(
        weights=weights, training_state=state, record=record, path=directory / record.id
    )


def load_newest_full(
    directory: Path,
    records: Iterable[CheckpointRecord],
    architecture: Mapping[str, Any] | None,
    on_corrupt: Callable[[CheckpointRecord], None] | None = None,
) -> LoadedCheckpoint | None:
    """The newest full checkpoint that verifies; corrupt ones are skipped with a warning (and
    handed to ``on_corrupt``). None when none verifies: training then starts from epoch 0."""
    candidates = sorted((r for r in records if r.is_full), key=lambda r: (-r.step, -r.epoch))
    for record in candidates:
        try:
            return load_record(directory, record, architecture)
        except CheckpointError as exc:
            logger.warning("skipping checkpoint %s: %s", record.id, exc)
            if isinstance(exc, CheckpointIntegrityError) and on_corrupt is not None:
                on_corrupt(record)
    if candidates:
        logger.warning("no valid checkpoint in %s: starting from epoch 0", directory)
    return None


def load_checkpoint_ref(
    ref: Any, architecture: Mapping[str, Any] | None = None
) -> LoadedCheckpoint:
    """Verify and load a :class:`~mental_health_hpo.checkpointing.study.CheckpointRef`."""
    return load_record(ref.checkpoints_dir, ref.record, architecture, ref.record.is_full)
