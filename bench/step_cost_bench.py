"""Where a training step of the default study goes, and what freezing the word embeddings saves.

Why: a profile of one default trial (cProfile of ``kedro run --pipelines hpo``, see
docs/benchmarks.md) put over 95% of the trial in the training math: backward, forward, and the
fused AdamW step with gradient clipping over all 22.7M parameters, half of which are MiniLM's
word-embedding matrix (30522 x 384), of which a batch uses a few hundred rows. This script times
the default step on the packaged MiniLM (batch 4 x 128 tokens, AdamW, clipping at 1.0) in two
arms, interleaved over ``--rounds`` rounds in one process:

* ``all``            every parameter trained (the default);
* ``frozen-words``   the word-embedding matrix frozen (no gradient, no optimizer state).

Each figure is the median seconds per step of a round (after ``--warmup`` steps), with the
phases: forward, backward, clip + optimizer step. It measures cost only: whether a frozen
embedding keeps what the study learns is a question for ``bench/evidence_bench.py``.

    .venv/bin/python bench/step_cost_bench.py --rounds 3 --steps 8
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

ARMS = ("all", "frozen-words")


def _build(arm: str, seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    from mental_health_hpo.model.encoder import load_encoder

    torch.manual_seed(seed)
    encoder = load_encoder("packaged:all-minilm-l6-v2").model
    encoder.train()
    if arm == "frozen-words":
        encoder.get_input_embeddings().weight.requires_grad_(False)
    params = [p for p in encoder.parameters() if p.requires_grad]
    return encoder, torch.optim.AdamW(params, lr=3e-4, weight_decay=0.01, fused=True)


def _steps(arm: str, steps: int, warmup: int, seed: int) -> dict[str, float]:
    model, optimizer = _build(arm, seed)
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 30000, (4, 128), generator=generator)
    mask = torch.ones_like(ids)
    phases: dict[str, list[float]] = {"forward": [], "backward": [], "optimizer": []}
    for step in range(warmup + steps):
        started = time.perf_counter()
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        loss = hidden.float().pow(2).mean()
        forward = time.perf_counter()
        loss.backward()
        backward = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(
            [p for p in model.parameters() if p.requires_grad], max_norm=1.0
        )
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done = time.perf_counter()
        if step >= warmup:
            phases["forward"].append(forward - started)
            phases["backward"].append(backward - forward)
            phases["optimizer"].append(done - backward)
    medians = {name: statistics.median(values) for name, values in phases.items()}
    medians["step"] = sum(medians.values())
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
    for round_number in range(args.rounds):
        order = ARMS if round_number % 2 == 0 else ARMS[::-1]  # interleaved, alternating first
        for arm in order:
            results[arm].append(_steps(arm, args.steps, args.warmup, seed=round_number))
            figures = results[arm][-1]
            print(
                f"round {round_number + 1} {arm:<13} step {figures['step']:.3f} s "
                f"(forward {figures['forward']:.3f}, backward {figures['backward']:.3f}, "
                f"clip+optimizer {figures['optimizer']:.3f})",
                flush=True,
            )
    print("\narm            median step s  [min, max]   ratio to all (median of rounds)")
    for arm in ARMS:
        steps = [r["step"] for r in results[arm]]
        ratios = [a["step"] / b["step"] for a, b in zip(results[arm], results["all"], strict=True)]
        print(
            f"{arm:<14} {statistics.median(steps):.3f}          "
            f"[{min(steps):.3f}, {max(steps):.3f}]   {statistics.median(ratios):.3f}"
        )
    for phase in ("forward", "backward", "optimizer"):
        values = {arm: statistics.median(r[phase] for r in results[arm]) for arm in ARMS}
        print(f"  {phase:<10} " + "  ".join(f"{arm} {values[arm]:.3f} s" for arm in ARMS))


if __name__ == "__main__":
    main()
