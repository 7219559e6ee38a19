"""Verified loads: SHA-256, size and architecture are checked before anything is deserialized.

Each file is hashed as a stream in 4 MB chunks (never read whole into memory), then loaded
memory-mapped where the storage has a local path: the weights through safetensors' ``safe_open``,
the training state with ``torch.load(mmap=True, weights_only=True)``, so a planted pickle payload
is refused, never executed, and the load allocates no copy of the state (its pages are the page
cache's, read when the tensors are first used). The file's identity (inode, size, modification
time) is compared before hashing and after mapping, so a file swapped between the check and the
load is refused too; objects are never modified in place (every write replaces them), so a
mapping cannot change under the reader. A storage without local paths is read through its
stream into memory instead.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import load_file as load_safetensors_file

from mental_health_hpo.checkpointing._errors import (
    CheckpointError,
    CheckpointIntegrityError,
    IncompatibleCheckpointError,
)
from mental_health_hpo.checkpointing._manifest import CheckpointRecord
from mental_health_hpo.workspace.layout import STATE_FILE, WEIGHTS_FILE
from mental_health_hpo.workspace.storage import Storage, as_storage, storage_at

logger = logging.getLogger(__name__)


@dataclass
class LoadedCheckpoint:
    """A verified checkpoint: weights, training state (None when weights-only), its record.

    ``path`` names the checkpoint's folder (a local path, or the storage's name for it)."""

    weights: dict[str, torch.Tensor]
    training_state: dict[str, Any] | None
    record: CheckpointRecord
    path: Path


_CHUNK = 4 * 1024 * 1024
Identity = tuple[int, int, int] | None


def _identity(path: Path | None) -> Identity:
    if path is None:
        return None
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _sha256_of(storage: Storage, key: str) -> str:
    digest = hashlib.sha256()
    with storage.open(key) as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(storage: Storage, record: CheckpointRecord, name: str) -> tuple[str, Identity]:
    """The key of one file of ``record`` after checking its size and SHA-256, and its identity
    (None where the storage has no local path)."""
    entry = record.files.get(name)
    if entry is None:
        raise CheckpointIntegrityError(f"{record.id}: manifest names no {name}")
    key, where = entry.path, storage.describe(entry.path)
    try:
        identity = _identity(storage.local_path(key))
        size = identity[1] if identity is not None else storage.size(key)
    except FileNotFoundError as exc:
        raise CheckpointIntegrityError(f"{record.id}: {where} is missing") from exc
    if size != entry.size:
        raise CheckpointIntegrityError(
            f"{record.id}: {where} has {size} bytes, manifest says {entry.size} (truncated?)"
        )
    digest = _sha256_of(storage, key)
    if digest != entry.sha256:
        raise CheckpointIntegrityError(
            f"{record.id}: {where} SHA-256 {digest[:12]}... != manifest {entry.sha256[:12]}..."
        )
    return key, identity


def _unchanged(storage: Storage, record: CheckpointRecord, key: str, identity: Identity) -> None:
    if identity is None:
        return
    where = storage.describe(key)
    try:
        now = _identity(storage.local_path(key))
    except FileNotFoundError as exc:
        raise CheckpointIntegrityError(f"{record.id}: {where} vanished while loading") from exc
    if now != identity:
        raise CheckpointIntegrityError(f"{record.id}: {where} changed while it was being loaded")


def _load_weights(storage: Storage, key: str) -> dict[str, torch.Tensor]:
    path = storage.local_path(key)
    if path is not None:
        return load_safetensors_file(os.fspath(path))  # memory-mapped
    with storage.open(key) as handle:
        return load_safetensors_bytes(handle.read())


def _load_state(storage: Storage, key: str) -> Any:
    path = storage.local_path(key)
    if path is not None:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    with storage.open(key) as handle:
        return torch.load(io.BytesIO(handle.read()), map_location="cpu", weights_only=True)


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
    location: Storage | str | Path,
    record: CheckpointRecord,
    architecture: Mapping[str, Any] | None = None,
    with_state: bool = True,
) -> LoadedCheckpoint:
    """Verify then load one checkpoint of a checkpoints folder (a path or a storage)."""
    storage = as_storage(location)
    check_architecture(record, architecture)
    weights_key, weights_identity = verify_file(storage, record, WEIGHTS_FILE)
    state_file = verify_file(storage, record, STATE_FILE) if with_state else None
    try:
        weights = _load_weights(storage, weights_key)
    except (SafetensorError, ValueError, OSError) as exc:
        raise CheckpointIntegrityError(f"{record.id}: weights unreadable: {exc}") from exc
    _unchanged(storage, record, weights_key, weights_identity)
    check_architecture(record, architecture, weights)
    state = None
    if state_file is not None:
        state_key, state_identity = state_file
        try:
            state = _load_state(storage, state_key)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
            raise CheckpointIntegrityError(
                f"{record.id}: training state refused by torch.load(weights_only=True): {exc}"
            ) from exc
        _unchanged(storage, record, state_key, state_identity)
        if not isinstance(state, dict):
            raise CheckpointIntegrityError(f"{record.id}: training state is not a dict")
    folder = storage.local_path(record.id) or Path(storage.describe(record.id))
    return LoadedCheckpoint(weights=weights, training_state=state, record=record, path=folder)


def load_newest_full(
    location: Storage | str | Path,
    records: Iterable[CheckpointRecord],
    architecture: Mapping[str, Any] | None,
    on_corrupt: Callable[[CheckpointRecord], None] | None = None,
) -> LoadedCheckpoint | None:
    """The newest full checkpoint that verifies; corrupt ones are skipped with a warning (and
    handed to ``on_corrupt``). None when none verifies: training then starts from epoch 0."""
    storage = as_storage(location)
    candidates = sorted((r for r in records if r.is_full), key=lambda r: (-r.step, -r.epoch))
    for record in candidates:
        try:
            return load_record(storage, record, architecture)
        except CheckpointError as exc:
            logger.warning("skipping checkpoint %s: %s", record.id, exc)
            if isinstance(exc, CheckpointIntegrityError) and on_corrupt is not None:
                on_corrupt(record)
    if candidates:
        logger.warning("no valid checkpoint in %s: starting from epoch 0", storage.describe(""))
    return None


def load_checkpoint_ref(
    ref: Any, architecture: Mapping[str, Any] | None = None
) -> LoadedCheckpoint:
    """Verify and load a :class:`~mental_health_hpo.checkpointing._study.CheckpointRef`."""
    storage = storage_at(ref.checkpoints_dir)  # a folder, or a bucket prefix
    return load_record(storage, ref.record, architecture, ref.record.is_full)


# Architecture signature: parameter names, shapes, dtypes and head types, compared on load.
def _state_of(model_or_state: torch.nn.Module | Mapping[str, torch.Tensor]) -> dict[str, Any]:
    if isinstance(model_or_state, torch.nn.Module):
        return dict(model_or_state.state_dict())
    return dict(model_or_state)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def architecture_signature(
    model_or_state: torch.nn.Module | Mapping[str, torch.Tensor],
    head_types: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A JSON-able signature of what a checkpoint must match to be loaded into this model.

    ``head_types`` names the task heads (e.g. ``{"criteria": "linear", "evidence": "span"}``)
    because two heads can have identical tensors but different meanings.
    """
    state = _state_of(model_or_state)
    params = {
        name: {"shape": list(tensor.shape), "dtype": _dtype_name(tensor.dtype)}
        for name, tensor in sorted(state.items())
        if isinstance(tensor, torch.Tensor)
    }
    signature: dict[str, Any] = {"parameters": params, "head_types": dict(head_types or {})}
    signature["hash"] = signature_hash(signature)
    return signature


def signature_hash(signature: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical JSON of the signature's parameters and head types."""
    body = {
        "parameters": signature.get("parameters", {}),
        "head_types": signature.get("head_types"),
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


def signature_differences(
    expected: Mapping[str, Any], actual: Mapping[str, Any], limit: int = 5
) -> list[str]:
    """Human-readable differences between two signatures (empty when compatible)."""
    diffs: list[str] = []
    exp_params: Mapping[str, Any] = expected.get("parameters", {})
    act_params: Mapping[str, Any] = actual.get("parameters", {})
    for name in sorted(set(exp_params) - set(act_params)):
        diffs.append(f"missing parameter {name}")
    for name in sorted(set(act_params) - set(exp_params)):
        diffs.append(f"unexpected parameter {name}")
    for name in sorted(set(exp_params) & set(act_params)):
        if exp_params[name] != act_params[name]:
            diffs.append(f"{name}: expected {exp_params[name]}, found {act_params[name]}")
    exp_heads, act_heads = expected.get("head_types"), actual.get("head_types")
    if exp_heads and act_heads is not None and exp_heads != act_heads:
        diffs.append(f"head types: expected {exp_heads}, found {act_heads}")
    if len(diffs) > limit:
        diffs = [*diffs[:limit], f"... and {len(diffs) - limit} more"]
    return diffs
