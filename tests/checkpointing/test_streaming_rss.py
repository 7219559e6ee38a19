"""Saves and verified loads stream: the host RAM they add is bounded by what they must hold.

Each case runs in a fresh process (``rss_probe.py``) so that the peak RSS belongs to it alone.
Two figures per case: the peak RSS (every mapped page, the page cache's pages of a memory-mapped
file included once read) and the peak anonymous RSS (memory the process allocated: a second copy
of the state shows up here). A verified load hashes each file as a stream, then memory-maps it,
and the probe reads every loaded weight: the weights file's pages (a third of the state) count in
the peak RSS, nothing of the state may show up as allocated memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).resolve().parents[2] / "bench" / "rss_probe.py"
STATE_MB = 300


@pytest.mark.parametrize(
    ("mode", "limit", "anon_limit"),
    [
        ("sync", 0.1, 0.1),  # streamed and hashed from the live tensors: no copy of the state
        ("deferred", 0.1, 0.1),  # the same bytes, committed on a thread
        ("async", 1.2, 1.2),  # one snapshot, written without a second copy
        # hashed in chunks, then memory-mapped: the weights' pages (a third) are the page cache's
        ("load", 0.45, 0.1),
    ],
)
def test_peak_rss_added_is_bounded(
    tmp_path: Path, mode: str, limit: float, anon_limit: float
) -> None:
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc to reset the peak RSS")
    directory = tmp_path / "study_1" / "trial_0000" / "checkpoints"
    result = subprocess.run(
        [sys.executable, str(PROBE), str(directory), mode, str(STATE_MB)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    ratio = figures["added_bytes"] / figures["state_bytes"]
    anon = figures["added_anon_bytes"] / figures["state_bytes"]
    assert figures["state_bytes"] >= STATE_MB * 2**20 * 0.95
    assert ratio < limit, f"{mode}: peak RSS grew by {ratio:.2f}x the state (limit {limit}x)"
    assert anon < anon_limit, f"{mode}: allocated {anon:.2f}x the state (limit {anon_limit}x)"
