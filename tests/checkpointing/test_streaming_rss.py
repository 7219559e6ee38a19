"""Saves and verified loads stream: the host RAM they add is bounded by what they must hold.

Each case runs in a fresh process (``rss_probe.py``) so that the peak RSS belongs to it alone.
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
    ("mode", "limit"),
    [
        ("sync", 0.25),  # streamed from the live tensors: no copy of the state
        ("async", 1.2),  # one snapshot, written without a second copy
        ("load", 1.2),  # one copy of what it returns; hashing reads in chunks
    ],
)
def test_peak_rss_added_is_bounded(tmp_path: Path, mode: str, limit: float) -> None:
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
    assert figures["state_bytes"] >= STATE_MB * 2**20 * 0.95
    assert ratio < limit, f"{mode}: peak RSS grew by {ratio:.2f}x the state (limit {limit}x)"
