"""Verified loads: SHA-256, size and architecture are checked before anything is deserialized.

Each file is read once; the bytes that were hashed are the bytes that get parsed, so a file
swapped between check and load cannot slip through. Training state is read with
``torch.load(weights_only=True)``: a planted pickle payload is refused, never executed.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from mental_health_hpo.checkpointing.errors import (
    CheckpointIntegrityError,
    IncompatibleCheckpointError,
)
from mental_health_hpo.checkpointing.hashing import sha256_bytes
from mental_health_hpo.checkpointing.manifest import STATE_FILE, WEIGHTS_FILE, CheckpointRecord
from mental_health_hpo.checkpointing.signature import (
    architecture_signature,
    signature_differences,
)


@dataclass
class LoadedCheckpoint:
    """A verified checkpoint: weights, training state (None when weights-only), its record."""

    weights: dict[str, torch.Tensor]
    training_state: dict[str, Any] | None
    record: CheckpointRecord
    path: Path


def read_verified(directory: Path, record: CheckpointRecord, name: str) -> bytes:
    """The bytes of one file of ``record``, after checking size and SHA-256."""
    entry = record.files.get(name)
    if entry is None:
        raise CheckpointIntegrityError(f"{record.id}: manifest names no {name}")
    path = directory / entry.path
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise CheckpointIntegrityError(f"{record.id}: {path} is missing") from exc
    if len(data) != entry.size:
        raise CheckpointIntegrityError(
            f"{record.id}: {path} has {len(data)} bytes, manifest says {entry.size} (truncated?)"
        )
    digest = sha256_bytes(data)
    if digest != entry.sha256:
        raise CheckpointIntegrityError(
            f"{record.id}: {path} SHA-256 {digest[:12]}... != manifest {entry.sha256[:12]}..."
        )
    return data


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
    raw_weights = read_verified(directory, record, WEIGHTS_FILE)
    raw_state = read_verified(directory, record, STATE_FILE) if with_state else None
    try:
        weights = load_safetensors(raw_weights)
    except (SafetensorError, ValueError) as exc:
        raise CheckpointIntegrityError(f"{record.id}: weights unreadable: {exc}") from exc
    check_architecture(record, architecture, weights)
    state = None
    if raw_state is not None:
        try:
            state = torch.load(io.BytesIO(raw_state), map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
            raise CheckpointIntegrityError(
                f"{record.id}: training state refused by torch.load(weights_only=True): {exc}"
            ) from exc
        if not isinstance(state, dict):
            raise CheckpointIntegrityError(f"{record.id}: training state is not a dict")
    return LoadedCheckpoint(
        weights=weights, training_state=state, record=record, path=directory / record.id
    )


def load_checkpoint_ref(
    ref: Any, architecture: Mapping[str, Any] | None = None
) -> LoadedCheckpoint:
    """Verify and load a :class:`~mental_health_hpo.checkpointing.study.CheckpointRef`."""
    return load_record(ref.checkpoints_dir, ref.record, architecture, ref.record.is_full)
