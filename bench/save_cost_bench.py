"""One epoch-end save, this project's against HF ``Trainer``'s, on the same MiniLM model and state.

Why: over a whole study the cost of a few saves is below the run-to-run spread of the study
itself (``study_cost_bench.py``). Here both savers write the same model with a populated AdamW
state, in one process, interleaved over ``--rounds`` rounds, so the per-save difference is
measured directly:

* ``project-sync``     ``Checkpointer.save`` (weights + training state, SHA-256 streamed, fsync,
  atomic rename, manifest commit), then ``flush``;
* ``project-deferred`` the same, the CPU default (fsync and commit on a thread; the figure
  includes ``flush``, so the deferred work is counted);
* ``hf``               ``Trainer._save_checkpoint`` with ``save_total_limit=1`` (safetensors
  weights, ``optimizer.pt``, ``scheduler.pt``, RNG state, ``trainer_state.json``; no fsync, no
  hash), the code HF runs at each epoch-end save.

Each figure is wall and CPU (process, all threads) seconds per save; the ratio is against
``hf`` in the same round. The retention each keeps is the same (one checkpoint).

    .venv/bin/python bench/save_cost_bench.py --rounds 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ARMS = ("project-sync", "project-deferred", "hf")


def build(workdir: Path) -> tuple[Any, Any, Any]:
    """MiniLM with one optimizer step taken (so AdamW holds its moments), and an HF Trainer."""
    import torch
    from transformers import Trainer, TrainingArguments

    from mental_health_hpo.model import PACKAGED_MINILM, ModelConfig, build_model

    torch.manual_seed(0)
    net = build_model(ModelConfig(encoder=PACKAGED_MINILM, max_length=128))
    arguments = TrainingArguments(
        output_dir=str(workdir / "hf"), save_strategy="epoch", save_total_limit=1,
        report_to="none", disable_tqdm=True, learning_rate=1e-4,
    )  # fmt: skip

    class Wrapped(torch.nn.Module):  # as study_cost_bench.py: HF sets attributes on .config
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

    trainer = Trainer(model=Wrapped(net), args=arguments)
    trainer.create_optimizer_and_scheduler(num_training_steps=100)
    for parameter in net.parameters():
        parameter.grad = torch.randn_like(parameter) * 1e-3
    trainer.optimizer.step()
    trainer.lr_scheduler.step()
    return net, trainer, trainer.optimizer


def project_save(
    net: Any, optimizer: Any, scheduler: Any, folder: Path, writer: str, n: int
) -> None:
    from mental_health_hpo.checkpointing import CheckpointOptions, load_policy, open_checkpoints

    options = CheckpointOptions(
        metric_name="val_f1_macro", policy=load_policy("default"), writer=writer
    )
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    with open_checkpoints(folder, options) as checkpoints:
        checkpoints.save(
            epoch=n, step=10 * (n + 1), metrics={"val_f1_macro": 0.1 * n},
            weights=net.state_dict(), training_state=state, force=True,
        )  # fmt: skip
        checkpoints.flush()


def hf_save(trainer: Any, n: int) -> None:
    trainer.state.global_step = 10 * (n + 1)
    trainer._save_checkpoint(trainer.model, trial=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    workdir = Path(tempfile.mkdtemp(prefix="save-cost-"))
    net, trainer, optimizer = build(workdir)
    size = sum(p.numel() * p.element_size() for p in net.parameters()) / 1e6
    print(f"MiniLM weights {size:.0f} MB + AdamW moments; rounds {args.rounds}; "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    times: dict[str, list[tuple[float, float]]] = {arm: [] for arm in ARMS}
    for n in range(args.rounds):
        order = ARMS[n % len(ARMS) :] + ARMS[: n % len(ARMS)]
        for arm in order:
            wall, cpu = time.perf_counter(), time.process_time()
            if arm == "hf":
                hf_save(trainer, n)
            else:
                writer = arm.removeprefix("project-")
                project_save(net, optimizer, trainer.lr_scheduler, workdir / arm, writer, n)
            times[arm].append((time.perf_counter() - wall, time.process_time() - cpu))
        print(f"  round {n + 1} " + " | ".join(f"{a} {times[a][-1][0]:.2f} s" for a in order))
    print(f"load average at the end {os.getloadavg()[0]:.2f}\n")
    print(f"{'arm':<18}{'wall s/save':>12}{'CPU s/save':>12}   vs hf (same round): wall | CPU")
    for arm in ARMS:
        walls = [w for w, _ in times[arm]]
        cpus = [c for _, c in times[arm]]
        line = f"{arm:<18}{statistics.median(walls):>12.2f}{statistics.median(cpus):>12.2f}"
        if arm != "hf":
            parts = []
            for index in (0, 1):
                ratios = [a[index] / b[index] for a, b in zip(times[arm], times["hf"], strict=True)]
                parts.append(
                    f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}..{max(ratios):.2f}]"
                )
            line += "   " + " | ".join(parts)
        print(line)


if __name__ == "__main__":
    main()
