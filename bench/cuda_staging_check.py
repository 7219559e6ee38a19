"""The background writer's CUDA path, checked and timed in one short run on a GPU machine.

Why a script and not a test: CI and this project's development machine have no GPU, and the
staging path (device -> pinned host buffers, ``non_blocking=True``, a CUDA event the writer waits
on, as PyTorch DCP's ``async_save`` stages) runs only where CUDA is. A session lent a device runs
this once and records the output in docs/benchmarks.md:

    .venv/bin/python bench/cuda_staging_check.py --state-mb 1024

It checks, and exits 1 when one fails:

1. the snapshot buffers are pinned host memory (on CUDA);
2. what is saved is the state at the call: the tensors are overwritten on the device right after
   ``save`` returns, and the loaded checkpoint still holds the old values;
3. the pool's buffers are reused by the next trial's manager (same host pointers);

and prints how long ``save`` blocks the caller with the background writer against the sync
writer, on the same state. ``--device cpu`` runs the same checks on CPU (no pinning), which is
how CI keeps this script working.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from mental_health_hpo.checkpointing import CheckpointManager, CheckpointOptions, RetentionPolicy
from mental_health_hpo.checkpointing._writers import SnapshotPool


def make_state(megabytes: int, device: str) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """Weights a third of ``megabytes``, AdamW-like moments the other two thirds."""
    per_tensor = 4 * 1024 * 1024  # 16 MB of fp32
    count = max(1, megabytes * 1024 * 1024 // 3 // (per_tensor * 4))
    weights = {f"layer{i}.weight": torch.randn(per_tensor, device=device) for i in range(count)}
    moments = {
        i: {"exp_avg": torch.randn_like(w), "exp_avg_sq": torch.rand_like(w), "step": 1.0}
        for i, w in enumerate(weights.values())
    }
    return weights, {"optimizer": {"state": moments, "param_groups": [{"lr": 1e-4}]}}


def options(writer: str) -> CheckpointOptions:
    return CheckpointOptions(
        metric_name="f1",
        policy=RetentionPolicy(),
        writer=writer,
        watch_disk=False,  # type: ignore[arg-type]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--state-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = args.device
    print(f"device {device}" + (f" ({torch.cuda.get_device_name()})" if device == "cuda" else ""))
    weights, state = make_state(args.state_mb, device)
    size = sum(t.numel() * t.element_size() for t in weights.values()) * 3 / 1e6
    print(f"state {size:,.0f} MB (weights + two moments)")
    failures: list[str] = []
    pool = SnapshotPool()
    root = Path(tempfile.mkdtemp(prefix="cuda-staging-"))
    blocked: dict[str, list[float]] = {"sync": [], "async": []}
    pointers: list[set[int]] = []
    for round_ in range(args.rounds):
        for index, writer in enumerate(("async", "sync")):
            folder = root / f"study_check/trial_{2 * round_ + index:04d}/checkpoints"
            manager = CheckpointManager(folder, options(writer), snapshot_pool=pool)
            expected = {name: t.detach().cpu().clone() for name, t in weights.items()}
            if device == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            result = manager.save(epoch=0, step=1, metrics={"f1": 0.5}, weights=weights,
                                  training_state=state)  # fmt: skip
            blocked[writer].append(time.perf_counter() - started)
            for tensor in weights.values():  # the next optimizer step, in place, on the device
                tensor.add_(1.0)
            manager.flush()
            if writer == "async":
                pointers.append({b.data_ptr() for b in pool.buffers.values()})
                if device == "cuda" and not all(b.is_pinned() for b in pool.buffers.values()):
                    failures.append("a snapshot buffer is not pinned host memory")
            loaded = manager.load(str(result.checkpoint_id))
            for name, tensor in expected.items():
                if not torch.equal(loaded.weights[name], tensor):
                    failures.append(f"{writer}: {name} holds values written after save returned")
                    break
            manager.close()
    reused = len({frozenset(p) for p in pointers}) == 1
    if not reused:
        failures.append("the snapshot buffers were allocated again for a later trial")
    sync, background = statistics.median(blocked["sync"]), statistics.median(blocked["async"])
    print(f"save blocks the caller: sync {sync:.3f} s, async {background:.3f} s "
          f"= {background / sync:.2f}x sync (median of {args.rounds})")  # fmt: skip
    print(f"snapshot pool {pool.nbytes / 1e6:,.0f} MB, reused by every round: {reused}")
    for failure in failures:
        print(f"FAILED: {failure}")
    shutil.rmtree(root, ignore_errors=True)
    print("ok" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
