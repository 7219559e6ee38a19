"""Checkpoint I/O at model scale: host RAM, save time, and the disk a study keeps.

Every figure is a ratio against a baseline measured in the same run:

* **host RAM**: peak RSS a save (sync, deferred, async) and a verified load add over the live
  state, for a synthetic state of ``--state-mb`` (weights a third, AdamW moments two thirds), each
  in a fresh process (``bench/rss_probe.py``), as a multiple of the state size;
* **save time**: a sync save of that state against the disk's own ``write`` + ``fsync`` of the
  same bytes, and against ``hashlib`` SHA-256 of the same bytes in memory;
* **disk over a study**: bytes retained after each trial of an N-trial study of a MiniLM-sized
  state, with the study-retention service the study runner calls, against keeping everything.

    .venv/bin/python bench/checkpoint_bench.py                    # 2 GB state, ~3 min
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from mental_health_hpo.checkpointing import (
    CheckpointOptions,
    StudyRetention,
    load_policy,
    open_checkpoints,
    read_manifest,
)

PROBE = Path(__file__).with_name("rss_probe.py")
MB = 1e6


def rss_ratio(mode: str, megabytes: int, scratch: Path) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix=f"rss-{mode}-", dir=scratch))
    result = subprocess.run(
        [sys.executable, str(PROBE), str(folder / "study_1" / "trial_0000" / "checkpoints"),
         mode, str(megabytes)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    figures["ratio"] = figures["added_bytes"] / figures["state_bytes"]
    return figures


def raw_write_seconds(directory: Path, nbytes: int) -> float:
    payload = os.urandom(1 << 20) * (nbytes >> 20)
    path = directory / "raw.bin"
    started = time.perf_counter()
    with path.open("wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    elapsed = time.perf_counter() - started
    path.unlink()
    return elapsed


def sha256_seconds(nbytes: int) -> float:
    payload = bytearray(nbytes)
    started = time.perf_counter()
    hashlib.sha256(payload).hexdigest()
    return time.perf_counter() - started


def sync_save_seconds(directory: Path, megabytes: int, writer: str) -> tuple[float, int]:
    from rss_probe import state  # type: ignore[import-not-found]

    weights, training_state = state(megabytes)
    options = CheckpointOptions(metric_name="f1", writer=writer, watch_disk=False)  # type: ignore[arg-type]
    manager = open_checkpoints(directory / writer, options)
    started = time.perf_counter()
    manager.save(
        epoch=0, step=1, metrics={"f1": 0.5}, weights=weights, training_state=training_state
    )
    returned = time.perf_counter() - started
    manager.close()
    manifest = read_manifest(directory / writer)
    assert manifest is not None
    return returned, manifest.total_size


def study_disk(scratch: Path, trials: int, epochs: int) -> tuple[list[float], list[float]]:
    """Retained bytes after each trial, against keeping every checkpoint."""
    from rss_probe import state  # type: ignore[import-not-found]

    weights, training_state = state(270)  # a MiniLM + AdamW state, about 270 MB
    policy = load_policy("default")
    study = scratch / "study_disk"
    retained, keep_all = [], []
    total = 0
    for trial in range(trials):
        folder = study / f"trial_{trial:04d}"
        options = CheckpointOptions(metric_name="f1", policy=policy, writer="sync")
        with open_checkpoints(folder / "checkpoints", options) as manager:
            for epoch in range(epochs):
                value = 0.5 + 0.1 * ((trial * 7 + epoch * 3) % 5)
                manager.save(
                    epoch=epoch, step=epoch + 1, metrics={"f1": value}, weights=weights,
                    training_state=training_state,
                )  # fmt: skip
                total += sum(t.numel() * t.element_size() for t in weights.values()) * 3
        StudyRetention(study, policy, "f1").trial_finished(folder)
        retained.append(sum(p.stat().st_size for p in study.rglob("*") if p.is_file()) / MB)
        keep_all.append(total / MB)
    return retained, keep_all


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--state-mb", type=int, default=2048)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (same disk)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(PROBE.parent))
    scratch = Path(tempfile.mkdtemp(prefix="ckpt-bench-", dir=args.dir))
    print(
        f"state {args.state_mb} MB; torch {torch.__version__}; cpus {os.cpu_count()}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print("\n## host RAM added over the live state (peak RSS, fresh process each)")
    for mode, target in (("sync", 0.25), ("deferred", 0.25), ("async", 1.2), ("load", 1.2)):
        figures = rss_ratio(mode, args.state_mb, scratch)
        state_gb = figures["state_bytes"] / 1e9
        print(
            f"  {mode:9} {figures['ratio']:.2f} x the state ({figures['added_bytes'] / MB:,.0f} MB "
            f"for {state_gb:.2f} GB; target <= {target}x) -> a 30 GB state would add "
            f"{30 * figures['ratio']:.1f} GB"
        )
    print("\n## save time (baseline: the same bytes written + fsynced, and SHA-256 in memory)")
    saves = [sync_save_seconds(scratch / f"save{i}", args.state_mb, "sync") for i in range(2)]
    seconds, size = statistics.median(s[0] for s in saves), saves[0][1]
    raw = statistics.median(raw_write_seconds(scratch, size) for _ in range(2))
    digest = sha256_seconds(size)
    deferred, _ = sync_save_seconds(scratch / "deferred", args.state_mb, "deferred")
    print(f"  files {size / MB:,.0f} MB; write+fsync {raw:.2f} s ({size / MB / raw:,.0f} MB/s); "
          f"SHA-256 {digest:.2f} s ({size / MB / digest:,.0f} MB/s)")  # fmt: skip
    print(f"  sync save {seconds:.2f} s = {seconds / raw:.2f} x write+fsync, "
          f"{seconds / (raw + digest):.2f} x (write+fsync + SHA-256)")  # fmt: skip
    print(f"  deferred save returns after {deferred:.2f} s = {deferred / seconds:.2f} x sync "
          "(the SHA-256, fsync, rename and commit go on in the background)")  # fmt: skip
    print(f"\n## disk over a study ({args.trials} trials x {args.epochs} epochs, policy default)")
    retained, keep_all = study_disk(scratch, args.trials, args.epochs)
    for trial, (kept, everything) in enumerate(zip(retained, keep_all, strict=True)):
        print(f"  after trial {trial}: retained {kept:6.0f} MB = {kept / everything:.3f} x "
              f"keeping everything ({everything:,.0f} MB)")  # fmt: skip


if __name__ == "__main__":
    main()
