"""Checkpoint I/O at model scale: host RAM, save time, and the disk a study keeps.

Every figure is a ratio against a baseline measured in the same run:

* **host RAM**: peak RSS a save (sync, deferred, async) and a verified load add over the live
  state, for a synthetic state of ``--state-mb`` (weights a third, AdamW moments two thirds), each
  in a fresh process (``bench/rss_probe.py``), as a multiple of the state size: all mapped pages
  (``VmHWM``) and allocated memory (``RssAnon``; a memory-mapped load's pages are the page cache's);
* **save time**: a sync save of that state against the disk's own ``write`` + ``fsync`` of the
  same bytes (the state's tensors written from their own memory into one file), interleaved over
  ``--rounds`` rounds, each round's ratio, median and spread; ``hashlib`` SHA-256 of the same
  bytes in memory for reference;
* **disk over a study**: bytes retained after each trial of an N-trial study of a MiniLM-sized
  state, with the study-retention service the study runner calls, against keeping everything.

    .venv/bin/python bench/checkpoint_bench.py                    # 2 GB state, ~4 min
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from mental_health_hpo.checkpointing import (
    CheckpointManager,
    CheckpointOptions,
    RetentionPolicy,
    StudyRetention,
    read_manifest,
)
from mental_health_hpo.workspace.locks import FileStudyLock

PROBE = Path(__file__).with_name("rss_probe.py")
MB = 1e6


def rss_ratio(mode: str, megabytes: int, scratch: Path) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix=f"rss-{mode}-", dir=scratch))
    result = subprocess.run(
        [sys.executable, str(PROBE), str(folder / "study_1" / "trial_0000" / "checkpoints"),
         mode, str(megabytes)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    shutil.rmtree(folder)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    figures["ratio"] = figures["added_bytes"] / figures["state_bytes"]
    return figures


def _tensors(obj: object) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for value in obj.values() for t in _tensors(value)]
    return []


def raw_write_seconds(path: Path, tensors: list[torch.Tensor]) -> float:
    """The baseline: the same bytes, from the tensors' own memory, written + fsynced."""
    started = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for tensor in tensors:
            view = tensor.reshape(-1).view(torch.uint8).numpy().data
            done = 0
            while done < len(view):
                done += os.write(fd, view[done:])
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - started
    path.unlink()
    return elapsed


def sha256_seconds(tensors: list[torch.Tensor]) -> float:
    started = time.perf_counter()
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    digest.hexdigest()
    return time.perf_counter() - started


def save_seconds(
    directory: Path, writer: str, weights: dict, training_state: dict
) -> tuple[float, float, int]:
    """(seconds until ``save`` returned, until everything was committed, bytes committed)."""
    options = CheckpointOptions(metric_name="f1", writer=writer, watch_disk=False)  # type: ignore[arg-type]
    manager = CheckpointManager(directory, options)
    started = time.perf_counter()
    manager.save(
        epoch=0, step=1, metrics={"f1": 0.5}, weights=weights, training_state=training_state
    )
    returned = time.perf_counter() - started
    manager.close()
    done = time.perf_counter() - started
    manifest = read_manifest(directory)
    assert manifest is not None
    shutil.rmtree(directory)
    return returned, done, manifest.total_size


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x [{min(values):.2f}..{max(values):.2f}]"


def save_time(scratch: Path, megabytes: int, rounds: int) -> None:
    from rss_probe import state  # type: ignore[import-not-found]

    weights, training_state = state(megabytes)
    tensors = _tensors(weights) + _tensors(training_state)
    raws, syncs, deferreds, ratios, deferred_ratios = [], [], [], [], []
    size = 0
    for index in range(rounds):
        order = ("raw", "sync", "deferred")
        order = order[index % 3 :] + order[: index % 3]
        figures: dict[str, float] = {}
        for arm in order:
            if arm == "raw":
                figures[arm] = raw_write_seconds(scratch / "raw.bin", tensors)
                continue
            returned, done, size = save_seconds(
                scratch / f"{arm}-{index}", arm, weights, training_state
            )
            figures[arm], figures[f"{arm}-done"] = returned, done
        raws.append(figures["raw"])
        syncs.append(figures["sync-done"])
        deferreds.append(figures["deferred"])
        ratios.append(figures["sync-done"] / figures["raw"])
        deferred_ratios.append(figures["deferred"] / figures["raw"])
        print(f"  round {index + 1} ({', '.join(order)}): write+fsync {figures['raw']:.2f} s, "
              f"sync save {figures['sync-done']:.2f} s = {ratios[-1]:.2f}x, deferred save "
              f"returns {figures['deferred']:.2f} s (committed {figures['deferred-done']:.2f} s)"
              )  # fmt: skip
    digest = sha256_seconds(tensors)
    raw = statistics.median(raws)
    print(f"  files {size / MB:,.0f} MB; write+fsync median {raw:.2f} s ({size / MB / raw:,.0f} "
          f"MB/s); SHA-256 in memory {digest:.2f} s ({size / MB / digest:,.0f} MB/s)")  # fmt: skip
    print(f"  sync save = {spread(ratios)} write+fsync (target <= 1.15x); median "
          f"{statistics.median(syncs):.2f} s")  # fmt: skip
    print(
        f"  deferred save returns after {spread(deferred_ratios)} write+fsync (the fsync, "
        "rename and commit go on in the background)"
    )


def study_disk(scratch: Path, trials: int, epochs: int) -> tuple[list[float], list[float]]:
    """Retained bytes after each trial, against keeping every checkpoint."""
    from rss_probe import state  # type: ignore[import-not-found]

    weights, training_state = state(270)  # a MiniLM + AdamW state, about 270 MB
    policy = RetentionPolicy.load("default")
    study = scratch / "study_disk"
    retained, keep_all = [], []
    total = 0
    for trial in range(trials):
        folder = study / f"trial_{trial:04d}"
        options = CheckpointOptions(metric_name="f1", policy=policy, writer="sync")
        with CheckpointManager(folder / "checkpoints", options) as manager:
            for epoch in range(epochs):
                value = 0.5 + 0.1 * ((trial * 7 + epoch * 3) % 5)
                manager.save(
                    epoch=epoch, step=epoch + 1, metrics={"f1": value}, weights=weights,
                    training_state=training_state,
                )  # fmt: skip
                total += sum(t.numel() * t.element_size() for t in weights.values()) * 3
        StudyRetention(study, policy, "f1", FileStudyLock(study)).trial_finished(folder)
        retained.append(sum(p.stat().st_size for p in study.rglob("*") if p.is_file()) / MB)
        keep_all.append(total / MB)
    return retained, keep_all


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--state-mb", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (same disk)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(PROBE.parent))
    scratch = Path(tempfile.mkdtemp(prefix="ckpt-bench-", dir=args.dir))
    try:
        report(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


RSS_TARGETS = {"sync": (0.1, 0.1), "deferred": (0.1, 0.1), "async": (1.2, 1.2), "load": (0.45, 0.1)}


def report(args: argparse.Namespace, scratch: Path) -> None:
    print(
        f"state {args.state_mb} MB; torch {torch.__version__}; cpus {os.cpu_count()}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print("\n## host RAM added over the live state (fresh process each)")
    for mode, (target, anon_target) in RSS_TARGETS.items():
        figures = rss_ratio(mode, args.state_mb, scratch)
        state_gb = figures["state_bytes"] / 1e9
        anon = figures["added_anon_bytes"] / figures["state_bytes"]
        added, allocated = figures["added_bytes"] / MB, figures["added_anon_bytes"] / MB
        print(
            f"  {mode:9} peak RSS {figures['ratio']:.2f}x the state (target <= {target}x), "
            f"allocated {anon:.2f}x (target <= {anon_target}x); "
            f"{added:,.0f} MB / {allocated:,.0f} MB for {state_gb:.2f} GB"
        )
    print(f"\n## save time (baseline: the same bytes written + fsynced), {args.rounds} rounds")
    save_time(scratch, args.state_mb, args.rounds)
    print(f"\n## disk over a study ({args.trials} trials x {args.epochs} epochs, default policy)")
    retained, keep_all = study_disk(scratch, args.trials, args.epochs)
    for trial, (kept, everything) in enumerate(zip(retained, keep_all, strict=True)):
        print(f"  after trial {trial}: retained {kept:6.0f} MB = {kept / everything:.3f} x "
              f"keeping everything ({everything:,.0f} MB)")  # fmt: skip


if __name__ == "__main__":
    main()
