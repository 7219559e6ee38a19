"""A run SIGKILLed mid-epoch and resumed ends with the weights and metrics of one never stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mental_health_hpo.checkpointing import RunCheckpoints
from mental_health_hpo.training import train

from .resume_worker import configs, frames

WORKER = Path(__file__).with_name("resume_worker.py")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Same intra-op threading as the worker, so float sums are ordered the same way."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _latest_weights(directory: Path) -> dict[str, torch.Tensor]:
    manifest = json.loads((directory / "manifest.json").read_text())
    newest = max(manifest["checkpoints"], key=lambda r: r["step"])
    return load_file(str(directory / newest["id"] / "model.safetensors"))


def _wait_for(path: Path, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            _, err = process.communicate()
            raise AssertionError(f"worker exited early ({process.returncode}): {err.decode()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"worker never reached {path.name}")
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(
    tiny_model_dir: Path, tmp_path: Path, one_thread: None
) -> None:
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    marker = tmp_path / "stalled"
    # 6 posts x 9 criteria = 54 windows = 7 batches an epoch: batch 10 is inside epoch 1.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), str(tiny_model_dir), str(killed_dir),
         "--stall-at-batch", "10", "--marker", str(marker)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    model_config, trainer_config = configs(str(tiny_model_dir))
    train_df, validation_df = frames()
    try:
        # the uninterrupted run, while the worker starts up (2 cores: they overlap)
        clean = train(
            model_config,
            trainer_config,
            train_df,
            validation_df,
            checkpoints=RunCheckpoints(clean_dir),
        )
        _wait_for(marker, worker, timeout=90)
        _wait_for(killed_dir / "manifest.json", worker, timeout=30)  # epoch 0 committed
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
        if worker.stderr is not None:
            worker.stderr.close()

    logged: list[int] = []
    resumed = train(
        model_config, trainer_config, train_df, validation_df,
        checkpoints=RunCheckpoints(killed_dir),
        on_metrics=lambda records: logged.extend(r.step for r in records),
    )  # fmt: skip

    assert resumed.resumed_from is not None and resumed.resumed_from["epoch"] == 0
    assert logged == [r["step"] for r in _journal(clean_dir)][1:]  # epoch 0 was logged before
    assert resumed.epochs_completed == clean.epochs_completed == 2
    assert resumed.last_logged_step == clean.last_logged_step
    assert resumed.metrics.keys() == clean.metrics.keys()
    for name, value in clean.metrics.items():
        assert resumed.metrics[name] == pytest.approx(value, abs=1e-6), name
    weights, expected = _latest_weights(killed_dir), _latest_weights(clean_dir)
    assert weights.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(weights[name], tensor, atol=1e-6, rtol=0, msg=name)


def _journal(directory: Path) -> list[dict[str, float]]:
    return list(json.loads((directory / "manifest.json").read_text())["history"])
