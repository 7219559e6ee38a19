"""Checkpointing benchmark: disk retained/peak vs keeping everything, time blocked, write speed.

A MiniLM-sized encoder (BertModel, hidden 384, 6 layers, ~22.7M params) with AdamW trains for a
fixed wall time per epoch over a study of N trials x M epochs. Every figure is printed as a ratio
against a baseline measured in the same run:

* bytes retained at the end and peak bytes on disk vs keeping every checkpoint (HF-Trainer style);
* retained bytes after each trial (flat once N exceeds keep_best_trials);
* time the training loop is blocked in ``save`` as a share of epoch time, async vs sync;
* sync save time vs the disk's own fsync'd write of the same bytes.

    .venv/bin/python bench/checkpoint_bench.py            # default run, ~2-3 min on 2 cores
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from mental_health_hpo.checkpointing import (
    CheckpointManager,
    SnapshotPool,
    architecture_signature,
    estimate_checkpoint_bytes,
    load_policy,
    read_manifest,
)
from mental_health_hpo.training.seeds import capture_rng_state

MB = 1e6


def build_model() -> torch.nn.Module:
    """MiniLM-L6 geometry from config (no download); falls back to a same-size MLP stack."""
    try:
        from transformers import BertConfig, BertModel

        config = BertConfig(
            vocab_size=30522,
            hidden_size=384,
            num_hidden_layers=6,
            num_attention_heads=12,
            intermediate_size=1536,
            max_position_embeddings=512,
        )
        return BertModel(config)
    except ImportError:  # pragma: no cover
        layers = [torch.nn.Embedding(30522, 384)] + [torch.nn.Linear(384, 1536) for _ in range(6)]
        return torch.nn.Sequential(*layers)


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    out = model(input_ids=batch).last_hidden_state
    out.pow(2).mean().backward()
    opt.step()


def tree_bytes(root: Path) -> int:
    total = 0
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except FileNotFoundError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
    return total


class PeakSampler:
    """Samples bytes on disk under a folder every few ms (temp files included)."""

    def __init__(self, root: Path, interval: float = 0.01) -> None:
        self.root, self.interval, self.peak = root, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_bytes(self.root))
            time.sleep(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_bytes(self.root))


def run_study(
    root: Path,
    model: torch.nn.Module,
    trials: int,
    epochs: int,
    epoch_s: float,
    async_save: bool,
    policy_name: str,
    seed: int,
) -> dict[str, object]:
    rng = random.Random(seed)
    policy = load_policy(policy_name)
    signature = architecture_signature(model, {"pooler": "bert"})
    batch = torch.randint(0, 30522, (2, 16))
    blocked: list[float] = []
    waited: list[float] = []
    epoch_times: list[float] = []
    finish_waits: list[float] = []
    steps: list[int] = []
    retained_after: list[int] = []
    saves = 0
    full_size = 0
    study = root / "study_bench"
    pool = SnapshotPool()  # one process runs the whole study: trials reuse snapshot buffers
    with PeakSampler(study) as sampler:
        for trial in range(trials):
            opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
            manager = CheckpointManager(
                study / f"trial_{trial}" / "checkpoints",
                policy=policy,
                metric_name="val_f1",
                architecture=signature,
                async_save=async_save,
                snapshot_pool=pool,
            )
            base = rng.uniform(0.3, 0.8)
            global_step = 0
            for epoch in range(epochs):
                start = time.perf_counter()
                count = 0
                while time.perf_counter() - start < epoch_s or count == 0:
                    train_step(model, opt, batch)
                    count += 1
                global_step += count
                t0 = time.perf_counter()
                result = manager.save(
                    epoch=epoch,
                    step=global_step,
                    metrics={"val_f1": base + rng.uniform(-0.1, 0.1), "loss": 1.0},
                    weights=model.state_dict(),
                    training_state={
                        "optimizer": opt.state_dict(),
                        "rng": capture_rng_state(),
                        "epoch": epoch,
                    },
                )
                blocked.append(time.perf_counter() - t0)
                waited.append(result.waited_s)
                epoch_times.append(time.perf_counter() - start)
                steps.append(count)
                saves += 1
            t0 = time.perf_counter()
            manager.flush()
            if not full_size:
                manifest = read_manifest(manager.directory)
                assert manifest is not None
                full_size = max(r.size for r in manifest.checkpoints)
            manager.finish()
            manager.close()
            finish_waits.append(time.perf_counter() - t0)
            retained_after.append(tree_bytes(study))
    retained_files = sorted(
        (str(p.relative_to(study)), p.stat().st_size) for p in study.rglob("*") if p.is_file()
    )
    return {
        "retained_files": retained_files,
        "blocked": blocked,
        "waited": waited,
        "epoch_times": epoch_times,
        "finish_waits": finish_waits,
        "steps": steps,
        "retained_after": retained_after,
        "retained_end": tree_bytes(study),
        "peak": sampler.peak,
        "saves": saves,
        "full_size": full_size,
        "study": study,
    }


def fsync_write_seconds(directory: Path, payload: bytes, repeats: int = 2) -> float:
    times = []
    for index in range(repeats):
        path = directory / f"raw-{index}.bin"
        start = time.perf_counter()
        with path.open("wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        times.append(time.perf_counter() - start)
        path.unlink()
    return statistics.median(times)


def memcpy_seconds(nbytes: int, repeats: int = 3) -> float:
    """A plain in-memory copy of ``nbytes`` into an existing buffer (the floor for a snapshot)."""
    source = torch.ones(nbytes // 4)
    target = torch.zeros_like(source)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        target.copy_(source)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=4, help="N trials of the async study")
    parser.add_argument("--epochs", type=int, default=2, help="M epochs per trial")
    parser.add_argument("--epoch-seconds", type=float, default=6.0, help="training time/epoch")
    parser.add_argument("--sync-epochs", type=int, default=2, help="epochs of the sync run")
    parser.add_argument("--policy", default="default")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (same disk)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="ckpt-bench-", dir=args.dir))
    try:
        model = build_model()
        params = sum(p.numel() for p in model.parameters())
        opt = torch.optim.AdamW(model.parameters())
        print(
            f"model: {params / 1e6:.1f}M params; estimate per full checkpoint "
            f"{estimate_checkpoint_bytes(model, opt) / MB:.0f} MB; policy {args.policy}; "
            f"torch threads {torch.get_num_threads()}; cpus {os.cpu_count()}"
        )
        a = run_study(
            scratch / "async",
            model,
            args.trials,
            args.epochs,
            args.epoch_seconds,
            True,
            args.policy,
            args.seed,
        )
        s = run_study(
            scratch / "sync",
            model,
            1,
            args.sync_epochs,
            args.epoch_seconds,
            False,
            args.policy,
            args.seed,
        )
        payload = b"".join(
            p.read_bytes() for p in sorted(Path(str(a["study"])).rglob("model.safetensors"))[:1]
        )
        full_size = int(a["full_size"])  # type: ignore[arg-type]
        payload = (payload * (full_size // max(len(payload), 1) + 1))[:full_size]
        raw = fsync_write_seconds(scratch, payload)
        del payload
        memcpy = memcpy_seconds(full_size)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    keep_all = int(a["saves"]) * full_size  # type: ignore[call-overload]
    retained = int(a["retained_end"])  # type: ignore[call-overload]
    peak = int(a["peak"])  # type: ignore[call-overload]

    def share(run: dict[str, object]) -> tuple[float, float]:
        blocked = run["blocked"]
        epochs = run["epoch_times"]
        assert isinstance(blocked, list) and isinstance(epochs, list)
        shares = [b / e for b, e in zip(blocked, epochs, strict=True)]
        return sum(blocked) / sum(epochs), max(shares)

    a_mean, a_max = share(a)
    s_mean, s_max = share(s)
    sync_save = statistics.median(s["blocked"])  # type: ignore[arg-type]
    print(
        f"study: {args.trials} trials x {args.epochs} epochs, {a['saves']} saves, "
        f"full checkpoint {full_size / MB:.0f} MB, epoch {args.epoch_seconds:.1f} s of training"
    )
    print(f"disk (baseline = keep every checkpoint, {keep_all / MB:.0f} MB):")
    print(
        f"  retained at end     {retained / MB:8.0f} MB  = {retained / keep_all:.3f} x baseline "
        f"({100 * (1 - retained / keep_all):.1f}% less)"
    )
    print(
        f"  peak on disk        {peak / MB:8.0f} MB  = {peak / keep_all:.3f} x baseline "
        f"({100 * (1 - peak / keep_all):.1f}% less)"
    )
    for name, size in a["retained_files"]:  # type: ignore[attr-defined]
        if size > MB:
            print(f"    kept: {name} ({size / MB:.0f} MB)")
    series = ", ".join(f"{b / MB:.0f}" for b in a["retained_after"])  # type: ignore[attr-defined]
    keep_series = ", ".join(
        f"{(i + 1) * args.epochs * full_size / MB:.0f}" for i in range(args.trials)
    )
    print(f"  retained after each trial (MB): {series}")
    print(f"  keep-everything after each trial (MB): {keep_series}")
    print("time blocked in save() as a share of epoch time (baseline = sync save):")
    print(
        f"  async  mean {100 * a_mean:5.2f}%  max {100 * a_max:5.2f}%   "
        f"median {1000 * statistics.median(a['blocked']):.0f} ms/save"
    )  # type: ignore[arg-type]
    print(
        f"  sync   mean {100 * s_mean:5.2f}%  max {100 * s_max:5.2f}%   "
        f"median {1000 * sync_save:.0f} ms/save"
    )
    print(f"  async / sync blocked time = {a_mean / s_mean:.3f}")
    waits = a["waited"]
    assert isinstance(waits, list)
    own = sum(b - w for b, w in zip(a["blocked"], waits, strict=True))  # type: ignore[call-overload]
    print(
        f"  async, snapshot only (without waiting for the previous save): "
        f"{100 * own / sum(a['epoch_times']):5.2f}% of epoch time; "  # type: ignore[call-overload]
        f"waiting for the previous save: {100 * sum(waits) / sum(a['epoch_times']):5.2f}%"
    )  # type: ignore[call-overload]
    async_median = statistics.median(a["blocked"])  # type: ignore[arg-type]
    print(
        f"  async blocked per save = {async_median / memcpy:.1f} x a plain in-memory copy of "
        f"the same {full_size / MB:.0f} MB ({1000 * memcpy:.0f} ms on this machine now)"
    )
    finish = statistics.median(a["finish_waits"])  # type: ignore[arg-type]
    print(f"  end-of-trial flush+finish (async, once per trial): median {1000 * finish:.0f} ms")
    steps_a = statistics.mean(a["steps"])  # type: ignore[arg-type]
    steps_s = statistics.mean(s["steps"])  # type: ignore[arg-type]
    print(
        f"  train steps per epoch: async {steps_a:.1f}, sync {steps_s:.1f} "
        "(the writer thread shares the CPUs)"
    )
    print(
        f"write speed (baseline = plain write+fsync of {full_size / MB:.0f} MB: "
        f"{raw:.2f} s, {full_size / MB / raw:.0f} MB/s):"
    )
    print(
        f"  sync save {sync_save:.2f} s = {sync_save / raw:.2f} x baseline "
        "(serialize + SHA-256 + temp/fsync/rename x2 + manifest + prune)"
    )
    print(f"total wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
