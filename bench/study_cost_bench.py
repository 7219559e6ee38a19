"""What checkpointing costs a whole study, end to end, against HF ``Trainer``'s own saving.

Five arms run the same study (N trials x M epochs of the packaged MiniLM on the same synthetic
windows, same seed, batch size and torch threads; trial t trains with its own learning rate):

* ``off``     this project's trainer with checkpointing disabled (the same code path);
* ``sync``    this project, checkpoints written and committed before ``save`` returns (fsync +
  SHA-256);
* ``deferred`` this project, written before ``save`` returns; the SHA-256, fsync, rename and
  commit on a thread (the default on CPU);
* ``async``   this project, one snapshot written on a background thread (the default on a GPU);
* ``hf-off``  HF ``Trainer`` with ``save_strategy="no"`` (its baseline);
* ``hf-save`` HF ``Trainer`` with epoch saves, ``save_total_limit=1`` and
  ``load_best_model_at_end`` (no fsync, no hash).

Both use their best batching (``group_by_length`` for HF). Each arm runs in a fresh process whose
wall and CPU time (user + system, the process and its threads) the parent measures. Arms are
interleaved in a rotating order over ``--rounds`` rounds; the cost of an arm in a round is its
time against the ``off`` arm of its own trainer in the same round, and the report gives the median
and the spread (min..max) of those ratios.

Inside each arm a clock sums the seconds the training thread spends in the saver's calls
(``CheckpointManager.save`` and ``close`` and the study retention at a trial's end; HF's
``_save_checkpoint`` and its ``load_best_model_at_end`` reload) and its CPU seconds there (which
other processes on the machine do not inflate), the CPU seconds the writer's
thread spends making files durable and committing, and, apart, the CPU seconds of the hash
thread (the SHA-256 of large writes runs there while the training thread, inside ``save``,
writes the same bytes and waits for it; so that time is already inside the training thread's
seconds, and the hash thread only uses a core training leaves idle while it waits). Those sums
are the sharper figure: on this machine the spread of a study's wall time is larger than what
its saves cost.

    .venv/bin/python bench/study_cost_bench.py             # 3 rounds, ~10 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

ARMS = ("off", "sync", "deferred", "async", "hf-off", "hf-save")
BASELINE = {"sync": "off", "deferred": "off", "async": "off", "hf-save": "hf-off"}


def corpus(n_posts: int) -> tuple[Any, Any]:
    from mental_health_hpo.data.model_input import synthetic_model_input
    from mental_health_hpo.data.splits import SplitConfig
    from mental_health_hpo.data.synthetic import SyntheticConfig

    table = synthetic_model_input(
        SyntheticConfig(n_posts=n_posts, seed=3), SplitConfig(train=0.8, validation=0.2, test=0.0)
    )
    return table[table["split"] == "train"], table[table["split"] == "validation"]


class CheckpointClock:
    """Seconds the training thread spends inside a saver's calls, and CPU seconds its helper
    threads spend on the deferred part (hash, fsync, commit), summed over the study.

    Why, beside the arm's own wall time: a study's run-to-run spread on this machine (5-10%) is
    larger than what its saves cost, so the arms' wall times alone cannot tell two savers apart;
    these sums attribute the cost inside the same real study.
    """

    def __init__(self) -> None:
        self.in_thread = 0.0
        self.in_thread_cpu = 0.0
        self.background_cpu = 0.0
        self.hash_cpu = 0.0

    def wrap(
        self, owner: Any, name: str, background_only: bool = False, helper: str = "background_cpu"
    ) -> None:
        """Time ``owner.name``: in the training thread (unless ``background_only``: a call the
        training thread's own timed calls already include) or as a helper thread's CPU, summed
        into the attribute ``helper``."""
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            main = threading.current_thread() is threading.main_thread()
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                if not main:
                    setattr(self, helper, getattr(self, helper) + time.thread_time() - cpu)
                elif not background_only:
                    self.in_thread += time.perf_counter() - wall
                    self.in_thread_cpu += time.thread_time() - cpu

        setattr(owner, name, timed)


def instrument(arm: str) -> CheckpointClock:
    clock = CheckpointClock()
    if arm.startswith("hf"):
        from transformers import Trainer

        clock.wrap(Trainer, "_save_checkpoint")
        clock.wrap(Trainer, "_load_best_model")  # load_best_model_at_end, once a trial
        return clock
    from mental_health_hpo.checkpointing import StudyRetention
    from mental_health_hpo.checkpointing import _manager as manager
    from mental_health_hpo.checkpointing import _serialize as serialize

    for name in ("save", "close"):
        clock.wrap(manager.CheckpointManager, name)
    clock.wrap(serialize.StagedCheckpoint, "make_durable", background_only=True)
    clock.wrap(serialize, "_update_digest", background_only=True, helper="hash_cpu")
    clock.wrap(StudyRetention, "trial_finished")
    return clock


def child(args: argparse.Namespace) -> None:
    """One arm: the whole study, in this process; prints its checkpoint clock as JSON."""
    clock = instrument(args.child)
    try:
        study_arm(args)
    finally:
        figures = {"ckpt_s": clock.in_thread, "ckpt_cpu_s": clock.in_thread_cpu}
        figures |= {"ckpt_bg_cpu_s": clock.background_cpu, "ckpt_hash_cpu_s": clock.hash_cpu}
        print(json.dumps(figures))


def study_arm(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from mental_health_hpo.checkpointing import (
        CheckpointSettings,
        RetentionPolicy,
        RunCheckpoints,
        StudyRetention,
    )
    from mental_health_hpo.model import PACKAGED_MINILM, ModelConfig, build_model
    from mental_health_hpo.training import FeatureCache, TrainerConfig, train
    from mental_health_hpo.workspace.locks import FileStudyLock

    train_df, val_df = corpus(args.posts)
    config = ModelConfig(encoder=PACKAGED_MINILM, max_length=args.max_length, stride=32)
    cache = FeatureCache()
    study = Path(args.workdir) / "study_bench"
    policy = RetentionPolicy.load("default")
    for trial in range(args.trials):
        lr = 3e-5 * (1 + trial)
        folder = study / f"trial_{trial:04d}"
        if args.child.startswith("hf"):
            hf_trial(args, config, cache, train_df, val_df, lr, folder)
            continue
        trainer = TrainerConfig(
            epochs=args.epochs, batch_size=args.batch_size, lr=lr, seed=42,
            progress_bar=False, max_steps_per_epoch=args.steps_per_epoch,
        )  # fmt: skip
        settings = (
            CheckpointSettings(policy, mode="disabled")
            if args.child == "off"
            else CheckpointSettings(policy, writer=args.child)
        )
        torch.manual_seed(0)
        train(
            config, trainer, train_df, val_df,
            checkpoints=RunCheckpoints(folder / "checkpoints", settings), feature_cache=cache,
            model=build_model(config),
        )  # fmt: skip
        if args.child != "off":  # what the study runner does when a trial ends
            StudyRetention(
                study, policy, trainer.optimization_metric, FileStudyLock(study)
            ).trial_finished(folder)


def hf_trial(
    args: argparse.Namespace,
    config: Any,
    cache: Any,
    train_df: Any,
    val_df: Any,
    lr: float,
    folder: Path,
) -> None:
    import torch
    from transformers import Trainer, TrainingArguments

    from mental_health_hpo.model import build_model
    from mental_health_hpo.training import DynamicPaddingCollator

    torch.manual_seed(0)
    net = build_model(config)
    train_features = cache.get_for_config(train_df, net.tokenizer, config)
    val_features = cache.get_for_config(val_df, net.tokenizer, config)
    steps = min(args.steps_per_epoch, -(-len(train_features) // args.batch_size))
    train_subset = torch.utils.data.Subset(train_features, range(steps * args.batch_size))

    class Wrapped(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, **data: torch.Tensor) -> dict[str, torch.Tensor]:
            outputs = self.inner(data)
            return {"loss": self.inner.compute_loss(outputs, data)["loss"]}

    saving = args.child == "hf-save"
    arguments = TrainingArguments(
        output_dir=str(folder), per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=32, num_train_epochs=args.epochs, learning_rate=lr,
        eval_strategy="epoch", save_strategy="epoch" if saving else "no",
        save_total_limit=1 if saving else None, load_best_model_at_end=saving,
        metric_for_best_model="eval_loss", greater_is_better=False,
        train_sampling_strategy="group_by_length", label_names=["labels"],
        disable_tqdm=True, report_to="none", seed=42, dataloader_num_workers=0,
        remove_unused_columns=False,
    )  # fmt: skip
    lengths = [int(train_features.lengths[i]) for i in range(len(train_subset))]
    train_subset.lengths = lengths  # type: ignore[attr-defined]
    trainer = Trainer(
        model=Wrapped(net),
        args=arguments,
        train_dataset=train_subset,  # type: ignore[arg-type]
        eval_dataset=val_features,  # type: ignore[arg-type]
        data_collator=DynamicPaddingCollator(int(net.tokenizer.pad_token_id or 0)),
    )
    trainer.train()


def run_arm(arm: str, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix=f"{arm}-", dir=workdir))
    command = [
        sys.executable, __file__, "--child", arm, "--workdir", str(folder),
        "--trials", str(args.trials), "--epochs", str(args.epochs), "--posts", str(args.posts),
        "--max-length", str(args.max_length), "--batch-size", str(args.batch_size),
        "--steps-per-epoch", str(args.steps_per_epoch), "--threads", str(args.threads),
    ]  # fmt: skip
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:  # never a full pipe
        process = subprocess.Popen(command, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        err.seek(0)
        out.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"arm {arm} failed:\n{err.read().decode()[-3000:]}")
        lines = [ln for ln in out.read().decode().splitlines() if ln.startswith('{"ckpt_s"')]
    clock = json.loads(lines[-1])
    disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {
        "wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "retained_mb": disk / 1e6,
        "ckpt_s": clock["ckpt_s"], "ckpt_bg_cpu_s": clock["ckpt_bg_cpu_s"],
        "ckpt_hash_cpu_s": clock["ckpt_hash_cpu_s"], "ckpt_cpu_s": clock["ckpt_cpu_s"],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", choices=ARMS, default=None)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--posts", type=int, default=260)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps-per-epoch", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return
    arms = [a for a in args.arms.split(",") if a]
    print(
        f"study: {args.trials} trials x {args.epochs} epochs x <= {args.steps_per_epoch} steps, "
        f"MiniLM, batch {args.batch_size}, max_length {args.max_length}, torch threads "
        f"{args.threads}; rounds {args.rounds}; load average {os.getloadavg()[0]:.2f}"
    )
    results: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory(prefix="study-cost-") as folder:
        for round_index in range(args.rounds):
            order = arms[round_index % len(arms) :] + arms[: round_index % len(arms)]
            for arm in order:
                results[arm].append(run_arm(arm, args, Path(folder)))
                figures = {k: round(v, 2) for k, v in results[arm][-1].items()}
                print(f"  round {round_index + 1} {arm:8} {json.dumps(figures)}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print("\narm       wall s (median)  CPU s (median)   cost vs own baseline: wall | CPU")
    for arm in arms:
        walls = [r["wall"] for r in results[arm]]
        cpus = [r["cpu"] for r in results[arm]]
        line = f"{arm:9} {statistics.median(walls):9.1f}       {statistics.median(cpus):9.1f}"
        base = BASELINE.get(arm)
        if base in results:
            for key in ("wall", "cpu"):
                ratios = [
                    r[key] / b[key] - 1 for r, b in zip(results[arm], results[base], strict=True)
                ]
                line += (
                    f"   {statistics.median(ratios):+.1%} [{min(ratios):+.1%}..{max(ratios):+.1%}]"
                )
        print(line)
    print("\narm       in the training thread: checkpoint s (median [min..max])  share of the "
          "arm's wall   writer thread CPU s   hash thread CPU s")  # fmt: skip
    for arm in arms:
        if arm in ("off", "hf-off"):
            continue
        spent = [r["ckpt_s"] for r in results[arm]]
        share = [r["ckpt_s"] / r["wall"] for r in results[arm]]
        background = [r["ckpt_bg_cpu_s"] for r in results[arm]]
        hashing = [r["ckpt_hash_cpu_s"] for r in results[arm]]
        writer, hasher = statistics.median(background), statistics.median(hashing)
        print(f"{arm:9} {statistics.median(spent):6.2f} [{min(spent):.2f}..{max(spent):.2f}]"
              f"{statistics.median(share):>32.1%}{writer:>22.2f}{hasher:>20.2f}")  # fmt: skip
    if "hf-save" in results:
        print("\nagainst HF's saves in the same round: training-thread s + writer-thread CPU s | "
              "all checkpoint CPU s (training thread + writer + hash threads)")  # fmt: skip
        for arm in ("sync", "deferred", "async"):
            if arm not in results:
                continue
            pairs = list(zip(results[arm], results["hf-save"], strict=True))
            wall = [(r["ckpt_s"] + r["ckpt_bg_cpu_s"]) / h["ckpt_s"] for r, h in pairs]
            cpu = [
                (r["ckpt_cpu_s"] + r["ckpt_bg_cpu_s"] + r["ckpt_hash_cpu_s"]) / h["ckpt_cpu_s"]
                for r, h in pairs
            ]
            print(f"{arm:9} {statistics.median(wall):.2f}x [{min(wall):.2f}..{max(wall):.2f}] | "
                  f"{statistics.median(cpu):.2f}x [{min(cpu):.2f}..{max(cpu):.2f}]")  # fmt: skip
    print(f"\n(maxrss of this parent: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} kB)")


if __name__ == "__main__":
    main()
