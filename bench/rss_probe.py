"""Measure the host RAM one save or one verified load adds, in a fresh process.

Run as ``python bench/rss_probe.py DIR MODE MB``: MODE is sync, deferred, async or load. Prints
JSON with the state size and what the save or load added over the live state, in bytes:

* ``added_bytes``: peak RSS (``VmHWM``), which counts every page the process has mapped,
  including the page cache pages of a memory-mapped file once they are read;
* ``added_anon_bytes``: peak anonymous RSS (``RssAnon``: memory the process allocated, which
  is what a second copy of the state would show up as), sampled every millisecond on a thread
  and read once more at the end while the loaded checkpoint is still referenced.

A verified load memory-maps the files, so after the load touches every byte, ``added_bytes``
holds the mapped file's pages (the page cache's, shared, evictable) and ``added_anon_bytes`` only
what the load itself allocated.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import torch

from mental_health_hpo.checkpointing import CheckpointManager, CheckpointOptions
from mental_health_hpo.checkpointing._writers import SnapshotPool


def _status() -> dict[str, int]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM", "RssAnon")}


def rss() -> tuple[int, int]:
    status = _status()
    return status["VmRSS"], status["VmHWM"]


class AnonPeak:
    """The largest ``RssAnon`` seen, sampled every millisecond until :meth:`stop`."""

    def __init__(self) -> None:
        self.peak = _status()["RssAnon"]
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(0.001):
            self.peak = max(self.peak, _status()["RssAnon"])

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return max(self.peak, _status()["RssAnon"])


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def state(megabytes: int) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """A third weights, two thirds optimizer moments (AdamW's shape of a state)."""
    per = megabytes * 2**20 // 4 // 3 // 8
    weights = {f"layer{i}.weight": torch.randn(per) for i in range(8)}
    moments = {
        i: {"exp_avg": torch.randn(per), "exp_avg_sq": torch.rand(per), "step": torch.tensor(3.0)}
        for i in range(8)
    }
    return weights, {"optimizer": {"state": moments, "param_groups": []}, "epoch": 1}


def main() -> None:
    directory, mode, megabytes = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    weights, training_state = state(megabytes)
    size = sum(t.numel() * t.element_size() for t in weights.values())
    size += sum(
        t.numel() * t.element_size()
        for m in training_state["optimizer"]["state"].values()  # type: ignore[index]
        for t in m.values()
    )
    writer = mode if mode in ("sync", "deferred", "async") else "sync"
    options = CheckpointOptions(metric_name="f1", writer=writer, watch_disk=False)
    manager = CheckpointManager(directory, options, snapshot_pool=SnapshotPool())
    if mode == "load":
        manager.save(
            epoch=0, step=1, metrics={"f1": 0.5}, weights=weights, training_state=training_state
        )
        manager.close()
        manager = CheckpointManager(directory, options)
    base, _ = rss()
    base_anon = _status()["RssAnon"]
    reset_peak()
    anon = AnonPeak()
    if mode == "load":
        loaded = manager.load_latest()
        assert loaded is not None and loaded.training_state is not None
        # Touch every loaded byte: lazily mapped pages count once they are read.
        total = sum(float(t.sum()) for t in loaded.weights.values())
        assert total == total
    else:
        manager.save(
            epoch=0, step=1, metrics={"f1": 0.5}, weights=weights, training_state=training_state
        )
        manager.flush()
    peak_anon = anon.stop()
    _, peak = rss()
    manager.close()
    added = {"added_bytes": peak - base, "added_anon_bytes": peak_anon - base_anon}
    print(json.dumps({"state_bytes": size, **added}))


if __name__ == "__main__":
    main()
