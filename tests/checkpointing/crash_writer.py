"""Fork server for the crash test: imports torch once, then forks one checkpoint writer per request.

Forking keeps each of the 50+ SIGKILL rounds at milliseconds instead of a 2 s torch import.
Protocol on stdin: ``fork <checkpoints dir> <sync|async>`` prints the child's pid; ``quit`` ends.
Each child saves tiny checkpoints in a loop forever, continuing from the last committed step; the
content of every checkpoint is a function of its step so the test can check what it loads.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import torch

from mental_health_hpo.checkpointing import RetentionPolicy
from tests.checkpointing.support import open_manager


def weights_for(step: int) -> dict[str, torch.Tensor]:
    return {"w": torch.full((128, 256), float(step)), "b": torch.arange(512.0) + step}


def metric_for(step: int) -> float:
    return (step * 7919 % 13) / 13


def writer(directory: Path, async_save: bool) -> None:
    torch.set_num_threads(1)
    manager = open_manager(
        directory,
        policy=RetentionPolicy(keep_last_n=2, keep_best_k=1, keep_best_k_max=2),
        metric_name="f1",
        async_save=async_save,
        check_disk=False,
    )
    step = manager.last_committed_step() or 0
    while True:
        step += 1
        weights = weights_for(step)
        manager.save(
            epoch=step,
            step=step,
            metrics={"f1": metric_for(step)},
            weights=weights,
            training_state={"step": step, "optimizer": {"m": weights["w"] * 2}},
        )


def main() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps killed children
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "quit":
            break
        if command[0] == "fork":
            pid = os.fork()
            if pid == 0:
                try:
                    writer(Path(command[1]), command[2] == "async")
                finally:
                    os._exit(1)
            print(pid, flush=True)


if __name__ == "__main__":
    main()
