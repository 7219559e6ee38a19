"""One trial's epoch-end saves, this project's against HF ``Trainer``'s, on the same MiniLM state.

Why: over a whole study the cost of a few saves is below the run-to-run spread of the study
itself (``study_cost_bench.py``). Here both savers write the same model with a populated AdamW
state, in one process, interleaved over ``--rounds`` rounds, so the difference is measured
directly. One round of an arm is one trial of ``--epochs`` epochs, saved into a fresh folder:

* ``project-sync``     ``Checkpointer.save`` at each epoch end as the trainer calls it (weights
  and training state; the last epoch weights only, since no resume can follow it), SHA-256
  streamed, fsync, atomic rename, manifest commit; then ``close``;
* ``project-deferred`` the same, the CPU default (fsync and commit on a thread; the figure
  includes ``close``, so the deferred work is counted);
* ``hf``               ``Trainer._save_checkpoint`` at each epoch end with ``save_total_limit=1``
  (safetensors weights, ``optimizer.pt``, ``scheduler.pt``, RNG state, ``trainer_state.json``;
  no fsync, no hash). Its ``load_best_model_at_end`` reload is not counted, in HF's favour.

Each figure is wall and CPU (process, all threads) seconds per trial and, for reference, of the
first epoch's save alone (a full save on both sides); ratios are against ``hf`` in the same round.

    .venv/bin/python bench/save_cost_bench.py --rounds 5 --epochs 2
    .venv/bin/python bench/save_cost_bench.py --rounds 5 --epochs 4
"""

from __future__ import annotations

import argparse
import os
import shutil
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


Times = list[tuple[float, float]]  # (wall, CPU) of each epoch's save, then of the close


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    return time.perf_counter() - start[0], time.process_time() - start[1]


def project_trial(
    net: Any, optimizer: Any, scheduler: Any, folder: Path, writer: str, epochs: int
) -> Times:
    from mental_health_hpo.checkpointing import CheckpointOptions, load_policy, open_checkpoints

    options = CheckpointOptions(
        metric_name="val_f1_macro", policy=load_policy("default"), writer=writer
    )
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    times: Times = []
    checkpoints = open_checkpoints(folder, options)
    for epoch in range(epochs):
        start = _clock()
        last = epoch == epochs - 1
        checkpoints.save(
            epoch=epoch, step=10 * (epoch + 1), metrics={"val_f1_macro": 0.1 * (epoch + 1)},
            weights=net.state_dict(), training_state=None if last else state, force=last,
        )  # fmt: skip
        if epoch == 0:
            checkpoints.flush()  # the first save alone, its deferred part included
        times.append(_since(start))
    start = _clock()
    checkpoints.close()
    times.append(_since(start))
    return times


def hf_trial(trainer: Any, folder: Path, epochs: int) -> Times:
    trainer.args.output_dir = str(folder)
    times: Times = []
    for epoch in range(epochs):
        start = _clock()
        trainer.state.global_step = 10 * (epoch + 1)
        trainer._save_checkpoint(trainer.model, trial=None)
        times.append(_since(start))
    times.append((0.0, 0.0))
    return times


def _ratio_line(values: list[float], baseline: list[float]) -> str:
    ratios = [a / b for a, b in zip(values, baseline, strict=True)]
    return f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}..{max(ratios):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    workdir = Path(tempfile.mkdtemp(prefix="save-cost-"))
    net, trainer, optimizer = build(workdir)
    size = sum(p.numel() * p.element_size() for p in net.parameters()) / 1e6
    print(f"MiniLM weights {size:.0f} MB + AdamW moments; {args.epochs} epoch saves a trial; "
          f"rounds {args.rounds}; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    runs: dict[str, list[Times]] = {arm: [] for arm in ARMS}
    for n in range(args.rounds):
        order = ARMS[n % len(ARMS) :] + ARMS[: n % len(ARMS)]
        for arm in order:
            folder = workdir / f"{arm}-{n}"
            if arm == "hf":
                runs[arm].append(hf_trial(trainer, folder, args.epochs))
            else:
                writer = arm.removeprefix("project-")
                runs[arm].append(
                    project_trial(net, optimizer, trainer.lr_scheduler, folder, writer, args.epochs)
                )
            shutil.rmtree(folder, ignore_errors=True)  # the next trial starts on a clean disk
        print(f"  round {n + 1} " + " | ".join(
            f"{a} {sum(w for w, _ in runs[a][-1]):.2f} s" for a in order))  # fmt: skip
    print(f"load average at the end {os.getloadavg()[0]:.2f}\n")
    print(f"{'arm':<18}{'trial wall s':>13}{'trial CPU s':>12}   vs hf (same round): wall | CPU")
    totals = {a: [tuple(sum(t[i] for t in r) for i in (0, 1)) for r in runs[a]] for a in ARMS}
    for arm in ARMS:
        walls, cpus = [w for w, _ in totals[arm]], [c for _, c in totals[arm]]
        line = f"{arm:<18}{statistics.median(walls):>13.2f}{statistics.median(cpus):>12.2f}"
        if arm != "hf":
            hf_walls, hf_cpus = [w for w, _ in totals["hf"]], [c for _, c in totals["hf"]]
            line += f"   {_ratio_line(walls, hf_walls)} | {_ratio_line(cpus, hf_cpus)}"
        print(line)
    print("\nthe first epoch's save alone (weights + training state on both sides):")
    for arm in ARMS:
        walls, cpus = [r[0][0] for r in runs[arm]], [r[0][1] for r in runs[arm]]
        line = f"{arm:<18}{statistics.median(walls):>13.2f}{statistics.median(cpus):>12.2f}"
        if arm != "hf":
            hf_walls, hf_cpus = [r[0][0] for r in runs["hf"]], [r[0][1] for r in runs["hf"]]
            line += f"   {_ratio_line(walls, hf_walls)} | {_ratio_line(cpus, hf_cpus)}"
        print(line)


if __name__ == "__main__":
    main()
