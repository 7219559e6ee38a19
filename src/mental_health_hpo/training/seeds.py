"""Seeds and RNG state: one call seeds every generator, and the state round-trips a checkpoint.

RNG states are converted to plain lists, numbers and tensors so a checkpoint holding them loads
with ``torch.load(weights_only=True)`` (no pickled numpy arrays or tuples of unknown classes).
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

#: cuBLAS needs this for deterministic matmuls on CUDA >= 10.2.
_CUBLAS_WORKSPACE = ":4096:8"


@dataclass(frozen=True)
class SeedRecord:
    """Every seed a run used, returned so the caller can record it: a run is reproducible only
    from every seed it used."""

    seed: int
    python: int
    numpy: int
    torch_cpu: int
    torch_cuda: int | None
    pythonhashseed: str
    dataloader_workers: int
    deterministic: bool

    def as_dict(self) -> dict[str, Any]:
        """Flat dict for logging as params."""
        return asdict(self)


def seed_everything(seed: int, deterministic: bool = False) -> SeedRecord:
    """Seed python, numpy, torch CPU and CUDA; set PYTHONHASHSEED and determinism flags.

    PYTHONHASHSEED only affects child processes (DataLoader workers started with spawn, the
    subprocesses of a study); this process's str hashing was fixed when it started.
    """
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.manual_seed_all(seed)
    set_deterministic(deterministic)
    return SeedRecord(
        seed=seed,
        python=seed,
        numpy=seed,
        torch_cpu=seed,
        torch_cuda=seed if cuda else None,
        pythonhashseed=str(seed),
        dataloader_workers=seed,
        deterministic=deterministic,
    )


def set_deterministic(enabled: bool) -> None:
    """Switch deterministic algorithms on or off; both ways, so a prior run's flag never leaks."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", _CUBLAS_WORKSPACE)
    if torch.are_deterministic_algorithms_enabled() != enabled:  # the call imports dynamo: ~5 s
        torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled and torch.backends.cudnn.benchmark


def worker_init_fn(worker_id: int) -> None:
    """Seed python and numpy in a DataLoader worker from torch's per-worker seed.

    torch already gives each worker ``base_seed + worker_id``, derived from the loader's
    generator; python and numpy are not seeded by torch, so without this every worker would
    draw the same numbers.
    """
    worker_seed = torch.initial_seed() % 2**32
    random.seed(worker_seed)
    np.random.seed(worker_seed)


def data_generator(seed: int) -> torch.Generator:
    """A dedicated CPU generator for DataLoader worker seeds, independent of the global RNG."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def capture_rng_state() -> dict[str, Any]:
    """Snapshot every global RNG as weights_only-safe structures (lists, numbers, tensors)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    state: dict[str, Any] = {
        "python": {"version": int(version), "state": [int(x) for x in internal], "gauss": gauss},
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64).copy()),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch_cpu": torch.get_rng_state().clone(),
        "torch_cuda": [s.clone() for s in torch.cuda.get_rng_state_all()]
        if torch.cuda.is_available()
        else [],
    }
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back a state from :func:`capture_rng_state`; CUDA states are skipped without CUDA."""
    py = state["python"]
    gauss = py["gauss"]
    random.setstate((int(py["version"]), tuple(int(x) for x in py["state"]), gauss))
    npy = state["numpy"]
    keys = npy["keys"]
    keys_array = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    np.random.set_state(
        (
            npy["kind"],
            keys_array.astype(np.uint32),
            int(npy["pos"]),
            int(npy["has_gauss"]),
            float(npy["cached_gaussian"]),
        )
    )
    torch.set_rng_state(state["torch_cpu"].to(torch.uint8).cpu())
    cuda_states = state.get("torch_cuda") or []
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.to(torch.uint8).cpu() for s in cuda_states])
