"""Architecture signature: parameter names, shapes, dtypes and head types, compared on load."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import torch


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
