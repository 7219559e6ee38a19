"""bench/cuda_staging_check.py, the one-shot check a GPU session runs, kept working on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "cuda_staging_check.py"


def test_the_staging_check_passes_on_cpu_and_reports_the_blocked_ratio(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--state-mb", "24", "--rounds", "2"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAILED" not in done.stdout and done.stdout.strip().endswith("ok")
    assert "x sync (median of 2)" in done.stdout
    assert list(tmp_path.iterdir()) == []  # its checkpoints are removed
