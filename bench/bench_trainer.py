"""Trainer benchmark: throughput against a bare PyTorch loop and the HF ``Trainer``, padding with
and without length grouping, and the time from a restart to the first resumed step.

Everything is measured in one run, on the same model (same initial weights) and the same data:

    python bench/bench_trainer.py                 # tiny random BERT, ~3 min on 2 CPU cores
    python bench/bench_trainer.py --model minilm  # the packaged all-MiniLM-L6-v2

Throughput is real (non-padding) tokens per second over the timed steps (after warm-up steps),
by this process's CPU time (stable on a shared machine; one torch thread by default, so no
spinning threads inflate it) and by wall clock. The contenders alternate for ``--rounds`` rounds
and the best round of each is reported, as ``timeit`` does. The HF ``Trainer`` runs twice, with
its defaults (random batches) and with its best setting
(``train_sampling_strategy="group_by_length"``), fused AdamW, lr 5e-5, fed the same windows with
the same per-batch dynamic padding; it needs ``accelerate`` and is skipped without it.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from mental_health_hpo.checkpointing import RunCheckpoints
from mental_health_hpo.model import PACKAGED_MINILM, DualAgentModel, ModelConfig, build_model
from mental_health_hpo.training import (
    DynamicPaddingCollator,
    FeatureCache,
    LengthGroupedSampler,
    TrainerConfig,
    WindowFeatures,
    train,
)

LR = 5e-5  # the HF Trainer default, used by all three


# --------------------------------------------------------------------------- setup


def tiny_encoder(target: Path) -> Path:
    """A random 2-layer BERT (seeded) with the packaged MiniLM tokenizer, as in tests/conftest."""
    from mental_health_hpo.model.tiny import save_tiny_bert

    if (target / "config.json").exists():
        return target
    return save_tiny_bert(target)


def corpus(n_posts: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and validation model-input tables of the synthetic ReDSM5 corpus."""
    from mental_health_hpo.data.model_input import synthetic_model_input
    from mental_health_hpo.data.splits import SplitConfig
    from mental_health_hpo.data.synthetic import SyntheticConfig

    table = synthetic_model_input(
        SyntheticConfig(n_posts=n_posts, seed=3),
        SplitConfig(train=0.85, validation=0.15, test=0.0),
    )
    return table[table["split"] == "train"], table[table["split"] == "validation"]


def model_config(args: argparse.Namespace) -> ModelConfig:
    encoder = PACKAGED_MINILM if args.model == "minilm" else str(args.encoder_dir)
    return ModelConfig(encoder=encoder, max_length=args.max_length, stride=64)


def fresh_model(config: ModelConfig) -> DualAgentModel:
    """The same initial weights for every contender."""
    torch.manual_seed(0)
    return build_model(config)


@contextlib.contextmanager
def clock() -> Iterator[list[tuple[float, float, int]]]:
    """(wall, CPU, real tokens) of every training loss computation: one per step, the same probe
    for all. Real tokens are the batch's attention-mask ones: padding is not work done."""
    marks: list[tuple[float, float, int]] = []
    original = DualAgentModel.compute_loss

    def timed(self: DualAgentModel, outputs: Any, data: Any) -> Any:
        if self.training:
            tokens = int(data["attention_mask"].sum())
            marks.append((time.perf_counter(), time.process_time(), tokens))
        return original(self, outputs, data)

    DualAgentModel.compute_loss = timed  # type: ignore[method-assign,assignment]
    try:
        yield marks
    finally:
        DualAgentModel.compute_loss = original  # type: ignore[method-assign]


Rate = tuple[float, float]


def rate(marks: list[tuple[float, float, int]], batch: int, warmup: int, steps: int) -> Rate:
    """Real tokens per second over the timed steps, by wall clock and by this process's CPU time.

    A mark is taken as a step's loss is computed, so the interval between two marks is one
    step; the tokens of the steps inside the window are divided by the window's time. CPU time
    is what the process itself spent, the stable figure on a shared machine.
    """
    timed = marks[warmup : warmup + steps + 1]
    if len(timed) < 2:
        raise RuntimeError(f"only {len(marks)} steps ran; need {warmup + steps + 1}")
    tokens = sum(m[2] for m in timed[1:])
    wall = timed[-1][0] - timed[0][0]
    cpu = timed[-1][1] - timed[0][1]
    return tokens / wall, tokens / max(cpu, 1e-9)


# --------------------------------------------------------------------------- contenders


def bare_loop(
    model: DualAgentModel, features: WindowFeatures, batch: int, steps: int, warmup: int
) -> Rate:
    """The reference, written by hand: the same batches and the same math (fused AdamW, grad
    clipping at 1.0, a linear schedule), none of the trainer's bookkeeping."""
    collate = DynamicPaddingCollator(int(model.tokenizer.pad_token_id or 0))
    sampler = LengthGroupedSampler(features.lengths, batch, seed=42)
    loader: DataLoader[Any] = DataLoader(
        features,  # type: ignore[arg-type]
        batch_sampler=sampler,
        collate_fn=collate,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, fused=True)
    total = warmup + steps + 1
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / total)
    model.train()
    with clock() as marks:
        for data in itertools.islice(loader, total):
            loss = model.compute_loss(model(data), data)["loss"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
    return rate(marks, batch, warmup, steps)


def this_trainer(
    config: ModelConfig,
    frames: tuple[pd.DataFrame, pd.DataFrame],
    cache: FeatureCache,
    batch: int,
    steps: int,
    warmup: int,
) -> Rate:
    """``train`` for one capped epoch (plus its validation pass, outside the timed steps)."""
    trainer_config = TrainerConfig(
        epochs=1, batch_size=batch, lr=LR, warmup_ratio=0.0, weight_decay=0.0,
        max_steps_per_epoch=warmup + steps + 1, max_eval_batches=1, progress_bar=False, seed=42,
    )  # fmt: skip
    with clock() as marks:
        train(config, trainer_config, *frames, feature_cache=cache, model=fresh_model(config))
    return rate(marks, batch, warmup, steps)


def hf_trainer(
    model: DualAgentModel,
    features: WindowFeatures,
    batch: int,
    steps: int,
    warmup: int,
    strategy: str = "random",
) -> Rate:
    """The Hugging Face ``Trainer`` on the same windows and padding, with its default random
    batches or its best setting, ``train_sampling_strategy="group_by_length"``."""
    from transformers import Trainer, TrainingArguments

    class Wrapped(torch.nn.Module):
        def __init__(self, inner: DualAgentModel) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, **data: torch.Tensor) -> dict[str, torch.Tensor]:
            outputs = self.inner(data)
            return {"loss": self.inner.compute_loss(outputs, data)["loss"]}

    with tempfile.TemporaryDirectory() as output, clock() as marks:
        arguments = TrainingArguments(
            output_dir=output, per_device_train_batch_size=batch, max_steps=warmup + steps + 1,
            disable_tqdm=True, report_to="none", save_strategy="no", seed=42,
            train_sampling_strategy=strategy, remove_unused_columns=False,
        )  # fmt: skip
        Trainer(
            model=Wrapped(model),
            args=arguments,
            train_dataset=features,  # type: ignore[arg-type]
            data_collator=DynamicPaddingCollator(int(model.tokenizer.pad_token_id or 0)),
        ).train()
    return rate(marks, batch, warmup, steps)


# --------------------------------------------------------------------------- padding, restart


def padding_per_batch(lengths: Sequence[int], batch: int, group_factor: int) -> tuple[float, float]:
    """Mean padding tokens per batch and padding share over one epoch's batch plan."""
    plan = LengthGroupedSampler(lengths, batch, seed=42, group_factor=group_factor).batches()
    array = np.asarray(lengths)
    pads = [int(array[b].max()) * len(b) - int(array[b].sum()) for b in plan]
    total = sum(int(array[b].max()) * len(b) for b in plan)
    return float(np.mean(pads)), sum(pads) / total


def child(args: argparse.Namespace) -> None:
    """Restart measurement, in a fresh process: train (phase 'first') or resume (phase 'resume')."""
    torch.set_num_threads(args.threads)
    config = model_config(args)
    frames = corpus(args.posts)
    trainer_config = TrainerConfig(  # the same config in both phases: resume checks its hash
        epochs=2, batch_size=args.batch_size, lr=LR, max_steps_per_epoch=3,
        max_eval_batches=1, progress_bar=False, seed=42,
    )  # fmt: skip
    first: list[float] = []
    original = DualAgentModel.compute_loss

    def timed(self: DualAgentModel, outputs: Any, data: Any) -> Any:
        if self.training and not first:
            first.append(time.time())
        return original(self, outputs, data)

    DualAgentModel.compute_loss = timed  # type: ignore[method-assign,assignment]
    called = time.time()
    stop_after_first = args.child == "first"  # then the process ends: the "crash"
    cache = FeatureCache(directory=args.feature_dir) if args.feature_dir else None
    result = train(
        config, trainer_config, *frames, checkpoints=RunCheckpoints(Path(args.checkpoint_dir)),
        on_epoch=lambda _: stop_after_first, feature_cache=cache,
    )  # fmt: skip
    print(
        json.dumps({"train_called": called, "first_step": first[0], "resumed": result.resumed_from})
    )


def restart_to_first_step(
    args: argparse.Namespace, workdir: Path, disk_cache: bool
) -> dict[str, float]:
    """Seconds from launching a resumed process to its first training step (and inside train).

    ``disk_cache``: both processes share a ``FeatureCache`` folder, so the restart reads the
    tokenized windows instead of tokenizing again.
    """
    workdir = workdir / ("cached" if disk_cache else "plain")
    base = [sys.executable, __file__, "--model", args.model, "--posts", str(args.posts),
            "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
            "--encoder-dir", str(args.encoder_dir), "--threads", str(args.threads),
            "--checkpoint-dir", str(workdir / "ckpt")]  # fmt: skip
    if disk_cache:
        base += ["--feature-dir", str(workdir / "features")]
    subprocess.run([*base, "--child", "first"], check=True, capture_output=True)
    launched = time.time()
    done = subprocess.run([*base, "--child", "resume"], check=True, capture_output=True, text=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["resumed"] is not None, "the second process did not resume"
    return {
        "process": report["first_step"] - launched,
        "in_train": report["first_step"] - report["train_called"],
    }


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("tiny", "minilm"), default="tiny")
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (tiny 40, minilm 8)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--encoder-dir", type=Path, default=None)
    parser.add_argument("--checkpoint-dir", type=Path, default=None)
    parser.add_argument("--feature-dir", type=Path, default=None)
    parser.add_argument("--child", choices=("first", "resume"), default=None)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return
    steps = args.steps or (40 if args.model == "tiny" else 8)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as folder:
        workdir = Path(folder)
        args.encoder_dir = tiny_encoder(args.encoder_dir or workdir / "tiny-bert")
        config = model_config(args)
        frames = corpus(args.posts)
        cache = FeatureCache()
        probe = fresh_model(config)
        features = cache.get_for_config(frames[0], probe.tokenizer, config)
        print(
            f"model={args.model} windows={len(features)} batch={args.batch_size} "
            f"timed_steps={steps} rounds={args.rounds} threads={args.threads} "
            f"torch={torch.__version__}"
        )
        bare_loop(fresh_model(config), features, args.batch_size, 3, 1)  # warm caches

        results: dict[str, list[Rate]] = {"bare": [], "trainer": [], "hf": [], "hf_grouped": []}
        have_hf = True
        for _ in range(args.rounds):
            results["bare"].append(
                bare_loop(fresh_model(config), features, args.batch_size, steps, args.warmup)
            )
            results["trainer"].append(
                this_trainer(config, frames, cache, args.batch_size, steps, args.warmup)
            )
            if have_hf:
                try:
                    for key, strategy in (("hf", "random"), ("hf_grouped", "group_by_length")):
                        results[key].append(
                            hf_trainer(
                                fresh_model(config),
                                features,
                                args.batch_size,
                                steps,
                                args.warmup,
                                strategy,
                            )
                        )
                except ImportError as error:
                    print(f"HF Trainer skipped: {error}")
                    have_hf = False
        print("\n## throughput: real (non-padding) tokens / s over the timed steps (best round)")
        print(f"{'':24}{'CPU time':>10}{'wall':>10}   rounds (CPU / wall)")
        best = {name: best_of(values) for name, values in results.items() if values}
        for name, label in (("bare", "bare PyTorch loop"), ("trainer", "this trainer"),
                            ("hf", "HF Trainer (defaults)"),
                            ("hf_grouped", "HF Trainer (grouped)")):  # fmt: skip
            if name in best:
                cpu, wall = best[name]
                print(f"{label:24}{cpu:10.1f}{wall:10.1f}   {fmt(results[name])}")
        ratio = [m / b for m, b in zip(best["trainer"], best["bare"], strict=True)]
        print(f"{'  trainer / bare':24}{ratio[0]:10.3f}{ratio[1]:10.3f}   (target >= 0.95)")
        for key, label in (
            ("hf", "  trainer / HF default"),
            ("hf_grouped", "  trainer / HF grouped"),
        ):
            if key in best:
                ratio = [m / h for m, h in zip(best["trainer"], best[key], strict=True)]
                print(f"{label:24}{ratio[0]:10.3f}{ratio[1]:10.3f}")

        print("\n## padding tokens per batch (one epoch's plan)")
        grouped = padding_per_batch(features.lengths, args.batch_size, 50)
        random = padding_per_batch(features.lengths, args.batch_size, 1)
        print(f"length-grouped         {grouped[0]:8.1f}   ({grouped[1]:.1%} of batch tokens)")
        print(f"random batches         {random[0]:8.1f}   ({random[1]:.1%} of batch tokens)")

        print("\n## restart to first resumed step (fresh process, checkpoint of epoch 0)")
        for disk_cache in (False, True):
            restart = restart_to_first_step(args, workdir, disk_cache)
            label = "features cached on disk" if disk_cache else "features tokenized again"
            print(
                f"{label:26} process launch -> first step {restart['process']:6.2f} s, "
                f"train() call -> first step {restart['in_train']:6.2f} s"
            )


def best_of(values: list[Rate]) -> tuple[float, float]:
    """(best CPU-time rate, best wall rate) over rounds."""
    return max(v[1] for v in values), max(v[0] for v in values)


def fmt(values: list[Rate]) -> str:
    return ", ".join(f"{cpu:.0f}/{wall:.0f}" for wall, cpu in values)


if __name__ == "__main__":
    main()
