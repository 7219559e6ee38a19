"""The streaming writer: the digest is of exactly the bytes stored, and its safetensors load.

The hash is taken on the bytes' way to storage, never from a read back, so these tests compare
the digest the stream reports with ``hashlib`` over the file as stored, for every way bytes
reach the stream (small gathered writes, large sliced ones, hashing that runs past the call).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from mental_health_hpo.checkpointing import _serialize as serialize
from mental_health_hpo.checkpointing._serialize import HashingStream, write_safetensors
from mental_health_hpo.workspace.storage import LocalStorage


def stored_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_digest_is_of_the_bytes_stored_for_small_large_and_late_hashed_writes(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(serialize, "_SLICE", 1 << 16)  # many slices from a small payload
    monkeypatch.setattr(serialize, "_OVERLAP_MIN", 1 << 12)
    store = LocalStorage(tmp_path)
    staged = store.stage("f")
    stream = HashingStream(staged)
    big = torch.randint(0, 255, (300_000,), dtype=torch.uint8)
    stream.write(b"header")  # gathered
    stream.write(big.numpy().data)  # sliced, hashed beside the write
    stream.write(b"x" * 100)  # gathered behind pending slices
    stream.write_all([big.numpy().data, big[:5000].numpy().data], wait=False)
    stream.write(b"tail")
    digest = stream.hexdigest()
    assert staged.commit() == stream.size == 6 + 300_000 + 100 + 305_000 + 4
    assert digest == stored_digest(tmp_path / "f")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.int64])
def test_safetensors_written_from_tensor_memory_load_with_safe_open(
    tmp_path: Path, dtype: torch.dtype
) -> None:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    weights = {
        "matrix": base.to(dtype),
        "transposed": base.t().to(dtype),  # not contiguous: written from one copy
        "tied": base.to(dtype)[1],  # a view into another tensor's storage
        "scalar": torch.tensor(3, dtype=dtype),
        "empty": torch.zeros(0, dtype=dtype),
        "mask": torch.tensor([True, False, True]),
    }
    store = LocalStorage(tmp_path)
    staged = store.stage("model.safetensors")
    stream = HashingStream(staged)
    write_safetensors(stream, weights, {"checkpoint_id": "c"})
    digest = stream.hexdigest()
    staged.commit()
    path = tmp_path / "model.safetensors"
    assert digest == stored_digest(path)
    with safe_open(str(path), framework="pt") as handle:
        assert handle.metadata() == {"checkpoint_id": "c"}
        assert sorted(handle.keys()) == sorted(weights)
        for name, tensor in weights.items():
            loaded = handle.get_tensor(name)
            assert loaded.dtype == tensor.dtype and loaded.shape == tensor.shape, name
            assert torch.equal(loaded, tensor), name


def test_a_failed_stage_leaves_nothing_and_lets_no_hash_run_on(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle this")

    weights = {"w": torch.randn(1 << 18)}
    with pytest.raises(RuntimeError, match="cannot pickle"):
        serialize.stage_checkpoint_files(store, "ckpt", 0, 1, weights, {"x": Unsaveable()})
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []
