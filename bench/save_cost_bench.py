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

Each figure is seconds per trial and, for reference, of the first epoch's save alone (a full
save on both sides): *blocked*, the wall time the caller spends inside ``save`` (what training
waits for), *wall* with the deferred work and the close included, and *CPU* (process, all
threads). ``--between-saves`` idles after each save, uncounted, as an epoch of training would:
a deferred writer finishes its hashing and fsync then, on a free core (``study_cost_bench.py``
measures a study where training and the writer share the cores). Ratios are against ``hf`` in
the same round.

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


#: Per epoch's save, then the close: (wall the caller waited in ``save``, wall, CPU) seconds.
Times = list[tuple[float, float, float]]


class Clock:
    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def since(self, blocked: float | None = None) -> tuple[float, float, float]:
        wall = time.perf_counter() - self.wall
        return (wall if blocked is None else blocked), wall, time.process_time() - self.cpu


def project_trial(
    net: Any,
    optimizer: Any,
    scheduler: Any,
    folder: Path,
    writer: str,
    epochs: int,
    gap: float,
) -> Times:
    from mental_health_hpo.checkpointing import (
        CheckpointManager,
        CheckpointOptions,
        RetentionPolicy,
    )

    options = CheckpointOptions(
        metric_name="val_f1_macro", policy=RetentionPolicy.load("default"), writer=writer
    )
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    times: Times = []
    checkpoints = CheckpointManager(folder, options)
    for epoch in range(epochs):
        clock = Clock()
        last = epoch == epochs - 1
        checkpoints.save(
            epoch=epoch, step=10 * (epoch + 1), metrics={"val_f1_macro": 0.1 * (epoch + 1)},
            weights=net.state_dict(), training_state=None if last else state, force=last,
        )  # fmt: skip
        blocked = time.perf_counter() - clock.wall
        if epoch == 0:
            checkpoints.flush()  # the first save's figure includes its deferred part
        times.append(clock.since(blocked))
        time.sleep(gap)
    clock = Clock()
    checkpoints.close()
    times.append(clock.since(0.0))  # waiting for the last deferred commit at a trial's end
    return times


def hf_trial(trainer: Any, folder: Path, epochs: int, gap: float) -> Times:
    trainer.args.output_dir = str(folder)
    times: Times = []
    for epoch in range(epochs):
        clock = Clock()
        trainer.state.global_step = 10 * (epoch + 1)
        trainer._save_checkpoint(trainer.model, trial=None)
        times.append(clock.since())
        time.sleep(gap)
    times.append((0.0, 0.0, 0.0))
    return times


def _ratio(values: list[float], baseline: list[float]) -> str:
    ratios = [a / b for a, b in zip(values, baseline, strict=True)]
    return f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}..{max(ratios):.2f}]"


def _table(title: str, figures: dict[str, list[tuple[float, float, float]]]) -> None:
    print(f"\n{title}")
    print(f"{'arm':<18}{'blocked s':>10}{'wall s':>8}{'CPU s':>7}   vs hf (same round): "
          "blocked | wall | CPU")  # fmt: skip
    for arm, rows in figures.items():
        columns = [[row[i] for row in rows] for i in (0, 1, 2)]
        line = f"{arm:<18}" + "".join(
            f"{statistics.median(c):>{w}.2f}" for c, w in zip(columns, (10, 8, 7), strict=True)
        )
        if arm != "hf":
            base = [[row[i] for row in figures["hf"]] for i in (0, 1, 2)]
            line += "   " + " | ".join(_ratio(c, b) for c, b in zip(columns, base, strict=True))
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--between-saves", type=float, default=1.0,
        help="seconds idle after each save, not counted: the epoch of training in which a "
        "deferred writer's work goes on (on a free core; study_cost_bench.py measures contention)",
    )  # fmt: skip
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    workdir = Path(tempfile.mkdtemp(prefix="save-cost-"))
    net, trainer, optimizer = build(workdir)
    size = sum(p.numel() * p.element_size() for p in net.parameters()) / 1e6
    print(f"MiniLM weights {size:.0f} MB + AdamW moments; {args.epochs} epoch saves a trial; "
          f"torch threads {args.threads}; rounds {args.rounds}; "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    runs: dict[str, list[Times]] = {arm: [] for arm in ARMS}
    for n in range(args.rounds):
        order = ARMS[n % len(ARMS) :] + ARMS[: n % len(ARMS)]
        for arm in order:
            folder = workdir / f"{arm}-{n}"
            if arm == "hf":
                runs[arm].append(hf_trial(trainer, folder, args.epochs, args.between_saves))
            else:
                writer = arm.removeprefix("project-")
                runs[arm].append(
                    project_trial(
                        net,
                        optimizer,
                        trainer.lr_scheduler,
                        folder,
                        writer,
                        args.epochs,
                        args.between_saves,
                    )
                )
            shutil.rmtree(folder, ignore_errors=True)  # the next trial starts on a clean disk
        print(f"  round {n + 1} " + " | ".join(
            f"{a} {sum(t[1] for t in runs[a][-1]):.2f} s" for a in order))  # fmt: skip
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    trial = {
        arm: [tuple(sum(t[i] for t in run) for i in (0, 1, 2)) for run in runs[arm]] for arm in ARMS
    }
    _table(f"one trial ({args.epochs} epoch saves, and the close)", trial)  # type: ignore[arg-type]
    _table("the first epoch's save alone (weights + training state on both sides)",
           {arm: [run[0] for run in runs[arm]] for arm in ARMS})  # fmt: skip


if __name__ == "__main__":
    main()
