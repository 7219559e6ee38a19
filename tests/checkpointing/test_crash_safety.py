"""Crash safety with real processes: SIGKILL a checkpoint writer at random moments, 50+ times.

After each kill: the manifest agrees with the files, the newest full checkpoint loads and holds
the content of its step, the committed step never goes back, and cleanup leaves no temp file.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from mental_health_hpo.checkpointing import read_manifest
from mental_health_hpo.checkpointing._recovery import find_orphans, remove_orphans
from mental_health_hpo.checkpointing._verify import load_record
from mental_health_hpo.workspace.atomic import is_temp_name
from mental_health_hpo.workspace.hashing import sha256_file

KILLS = 50
SERVER = Path(__file__).with_name("crash_writer.py")


def wait_gone(pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.002)
    raise AssertionError(f"writer {pid} survived SIGKILL")


def check_consistent(directory: Path, last_step: int) -> int:
    manifest = read_manifest(directory)
    if manifest is None:
        assert last_step == 0, "a committed manifest disappeared"
        return 0
    for record in manifest.checkpoints:
        for entry in record.files.values():
            path = directory / entry.path
            assert path.stat().st_size == entry.size, f"{path} size disagrees with the manifest"
            assert sha256_file(path) == entry.sha256, f"{path} hash disagrees with the manifest"
    fulls = sorted((r for r in manifest.checkpoints if r.is_full), key=lambda r: r.step)
    assert fulls, "no resume-capable checkpoint left"
    loaded = load_record(directory, fulls[-1])
    step = fulls[-1].step
    assert float(loaded.weights["w"][0, 0]) == float(step)
    assert loaded.training_state is not None and loaded.training_state["step"] == step
    committed = manifest.history[-1].step
    assert committed >= last_step, "the committed step went back"
    assert [h.step for h in manifest.history] == sorted(h.step for h in manifest.history)
    return committed


def test_sigkill_at_random_moments_never_tears_a_checkpoint(tmp_path: Path) -> None:
    rng = random.Random(1234)
    directory = tmp_path / "study_1" / "trial_0" / "checkpoints"
    server = subprocess.Popen(
        [sys.executable, str(SERVER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert server.stdin is not None and server.stdout is not None
    last_step, leftovers, started = 0, 0, time.monotonic()
    try:
        for round_ in range(KILLS):
            mode = "async" if round_ % 2 else "sync"
            server.stdin.write(f"fork {directory} {mode}\n")
            server.stdin.flush()
            pid = int(server.stdout.readline())
            time.sleep(rng.uniform(0.02, 0.25))
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid)
            last_step = check_consistent(directory, last_step)
            orphans = find_orphans(tmp_path)
            leftovers += len(orphans)
            remove_orphans(orphans)
            temps = [p for p in tmp_path.rglob("*") if is_temp_name(p.name)]
            assert not temps, f"cleanup left temp files: {temps}"
            assert not find_orphans(tmp_path)
    finally:
        server.stdin.write("quit\n")
        server.stdin.flush()
        server.wait(timeout=10)
    assert last_step >= 10, f"writers made too little progress ({last_step} steps)"
    assert leftovers > 0, "no kill landed mid-write; the test proved nothing"
    print(
        f"{KILLS} kills, {last_step} steps committed, {leftovers} leftovers cleaned, "
        f"{time.monotonic() - started:.1f}s"
    )
