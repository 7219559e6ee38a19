"""``python -m mental_health_hpo.evaluation``: evaluate a trial or checkpoint, print a table.

Examples::

    python -m mental_health_hpo.evaluation --trial experiments/study_x/trial_0003 --split validation
    python -m mental_health_hpo.evaluation --trial experiments/study_x/trial_0003 \\
        --checkpoint ckpt-e0001-s000040 --split test
    python -m mental_health_hpo.evaluation \\
        --checkpoint experiments/study_x/trial_0003/checkpoints/ckpt-e0001-s000040

The same code path as the evaluate pipeline (``evaluation.run.evaluate_checkpoint``); it writes
no report (only the pipeline's single test evaluation per study does).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mental_health_hpo.evaluation.run import evaluate_checkpoints, metrics_table, model_config_of
from mental_health_hpo.evaluation.selection import (
    SelectionError,
    best_checkpoints,
    checkpoint_by_id,
    read_trial,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mental_health_hpo.evaluation",
        description="Evaluate a trial's best checkpoint(s), or one checkpoint, on a split.",
    )
    parser.add_argument("--trial", type=Path, help="a trial folder experiments/study_x/trial_n")
    parser.add_argument(
        "--checkpoint",
        help="a checkpoint id of the trial (ckpt-e0001-s000040) or a checkpoint folder path",
    )
    parser.add_argument("--split", choices=("validation", "test"), default="validation")
    parser.add_argument(
        "--data-dir", type=Path, default=Path("data/05_model_input"), help="model_input_<split>"
    )
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    args = parser.parse_args(argv)
    if args.trial is None and args.checkpoint is None:
        parser.error("give --trial, --checkpoint (a path), or both")
    return args


def _trial_dir(args: argparse.Namespace) -> Path:
    if args.trial is not None:
        return Path(args.trial)
    path = Path(args.checkpoint)  # <trial>/checkpoints/<ckpt-id>
    if not path.is_dir():
        raise SelectionError(f"--checkpoint without --trial must be a folder, got {path}")
    return path.parent.parent


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        trial_dir = _trial_dir(args)
        record = read_trial(trial_dir)
        metric = record.get("config", {}).get("trainer", {}).get("optimization_metric")
        refs = (
            [checkpoint_by_id(trial_dir, Path(args.checkpoint).name, metric)]
            if args.checkpoint
            else best_checkpoints(trial_dir, metric)
        )
    except SelectionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    frame = pd.read_parquet(args.data_dir / f"model_input_{args.split}.parquet")
    evaluations = evaluate_checkpoints(
        model_config_of(record),
        refs,
        frame,
        threshold=args.threshold,
        batch_size=args.batch_size,
        device=args.device,
    )
    for evaluation in evaluations:
        title = f"{trial_dir.name} / {evaluation.ref.record.id} on {args.split}"
        if args.json:
            print(json.dumps({"title": title, **evaluation.flat(f"{args.split}_")}, indent=2))
        else:
            print(metrics_table(evaluation.metrics, title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
