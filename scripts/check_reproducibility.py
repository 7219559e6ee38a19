"""Reproducibility: the same seed gives the same metrics, today and against a stored baseline.

Trains a tiny configuration (a random 2-layer BERT with the packaged MiniLM tokenizer, a small
synthetic ReDSM5 corpus) twice in this process with the same seed, requires identical metrics,
then compares them with ``scripts/reproducibility_baseline.json`` (``--update`` rewrites it).
CPU only, about a minute on 2 cores. Exit code 0 when both checks pass, 1 otherwise.

    python scripts/check_reproducibility.py [--update] [--atol 1e-6]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pandas as pd
import torch

BASELINE = Path(__file__).with_name("reproducibility_baseline.json")
#: Metrics compared; the per-criterion ones follow from these and would only add noise.
KEYS = (
    "train_loss", "val_loss", "val_accuracy", "val_f1_macro", "val_f1_micro",
    "val_precision_macro", "val_recall_macro", "val_macro_pr_auc", "val_exact_match",
    "val_evidence_f1", "val_char_f1", "val_null_span_accuracy", "lr",
)  # fmt: skip


def tiny_encoder(target: Path) -> Path:
    """A random 2-layer BERT (seeded) saved with the packaged MiniLM tokenizer."""
    from mental_health_hpo.model.tiny import save_tiny_bert

    return save_tiny_bert(target)


def tiny_corpus() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and validation model-input tables from the synthetic ReDSM5 generator."""
    from mental_health_hpo.data.model_input import synthetic_model_input
    from mental_health_hpo.data.splits import SplitConfig
    from mental_health_hpo.data.synthetic import SyntheticConfig

    table = synthetic_model_input(
        SyntheticConfig(n_posts=16, seed=7),
        SplitConfig(train=0.6, validation=0.4, test=0.0),
    )
    return table[table["split"] == "train"], table[table["split"] == "validation"]


def run_once(encoder: Path, train_df: pd.DataFrame, validation_df: pd.DataFrame) -> list[Any]:
    from mental_health_hpo.model import ModelConfig
    from mental_health_hpo.training import TrainerConfig, train

    model_config = ModelConfig(encoder=str(encoder), max_length=128, stride=32)
    trainer_config = TrainerConfig(
        epochs=2, batch_size=16, lr=1e-3, seed=1234, max_steps_per_epoch=4, progress_bar=False
    )
    result = train(model_config, trainer_config, train_df, validation_df)
    return [{k: epoch[k] for k in KEYS} for epoch in result.history]


def compare(current: list[Any], stored: list[Any], atol: float) -> list[str]:
    if len(current) != len(stored):
        return [f"{len(current)} epochs now, {len(stored)} in the baseline"]
    return [
        f"epoch {e} {key}: {now[key]!r} now, {old.get(key)!r} in the baseline"
        for e, (now, old) in enumerate(zip(current, stored, strict=True))
        for key in KEYS
        if old.get(key) is None or abs(now[key] - old[key]) > atol
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--update", action="store_true", help="rewrite the stored baseline")
    parser.add_argument("--atol", type=float, default=1e-6, help="tolerance vs the baseline")
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # thread count changes float summation order

    train_df, validation_df = tiny_corpus()
    with tempfile.TemporaryDirectory() as folder:
        encoder = tiny_encoder(Path(folder) / "tiny-bert")
        first = run_once(encoder, train_df, validation_df)
        second = run_once(encoder, train_df, validation_df)
    if first != second:
        print("FAIL: two runs with the same seed differ:")
        for line in compare(second, first, 0.0):
            print("  " + line)
        return 1
    print(f"ok: two runs with seed 1234 agree exactly ({len(first)} epochs)")

    if args.update or not args.baseline.exists():
        payload = {
            "description": "scripts/check_reproducibility.py: tiny config, seed 1234, CPU",
            "torch": torch.__version__,
            "python": platform.python_version(),
            "epochs": first,
        }
        args.baseline.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"baseline written to {args.baseline}")
        return 0
    stored = json.loads(args.baseline.read_text())
    problems = compare(first, stored["epochs"], args.atol)
    if problems:
        print(f"FAIL: differs from {args.baseline} (torch {stored.get('torch')}):")
        for line in problems:
            print("  " + line)
        return 1
    print(f"ok: matches {args.baseline.name} within {args.atol}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
