"""What one trial of the default configuration learns, evidence first, under parameter overrides.

Trains one trial of ``conf/base``'s ``hpo.base`` on the default synthetic corpus (the
``data_ingest`` defaults, the same split), then scores its final model on validation and test:
sentence-evidence macro-F1 at the fixed 0.5 threshold and at the threshold chosen on validation
(``metrics.thresholds``, as ``evaluate`` does), and criteria macro-F1, next to the TF-IDF
baselines fitted on train and chosen on validation. Each ``--set`` arm runs in turn, in this
process, with the same seed; the per-epoch validation line shows when evidence starts to learn.

    .venv/bin/python bench/evidence_bench.py --set trainer.batch_size=8 --set trainer.batch_size=4
    .venv/bin/python bench/evidence_bench.py --set "trainer.epochs=8;trainer.batch_size=8"

It reads no test split during training: the test split is scored once per arm, at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CONF = Path(__file__).resolve().parents[1] / "conf" / "base"
EPOCH_KEYS = (
    "train_loss",
    "val_f1_macro",
    "val_sentence_evidence_f1_macro",
    "val_sentence_evidence_precision_macro",
    "val_sentence_evidence_recall_macro",
)


def splits() -> dict[str, Any]:
    from mental_health_hpo.data.model_input import synthetic_model_input
    from mental_health_hpo.data.splits import SplitConfig
    from mental_health_hpo.data.synthetic import SyntheticConfig

    ingest = yaml.safe_load((CONF / "parameters_data_ingest.yml").read_text())["data_ingest"]
    synthetic = dict(ingest["source"]["synthetic"])
    synthetic["filler_sentences"] = tuple(synthetic["filler_sentences"])
    table = synthetic_model_input(SyntheticConfig(**synthetic), SplitConfig())
    return {
        name: table[table["split"] == name].reset_index(drop=True).drop(columns=["split"])
        for name in ("train", "validation", "test")
    }


def overridden(assignments: str) -> dict[str, dict[str, Any]]:
    """``hpo.base`` with ``"trainer.epochs=8;model.dropout=0.2"`` applied (values read as YAML)."""
    base = yaml.safe_load((CONF / "parameters_hpo.yml").read_text())["hpo"]["base"]
    for assignment in filter(None, assignments.split(";")):
        key, value = assignment.split("=", 1)
        section, name = key.strip().split(".", 1)
        base[section][name] = yaml.safe_load(value)
    base["trainer"].pop("torch_threads", None)  # a study setting, not a TrainerConfig field
    return base


def run_arm(assignments: str, data: dict[str, Any]) -> dict[str, Any]:
    from mental_health_hpo.metrics import validation_metrics
    from mental_health_hpo.metrics.thresholds import (
        choose_evidence_threshold,
        sentence_f1_macro,
        with_evidence_threshold,
    )
    from mental_health_hpo.model import ModelConfig
    from mental_health_hpo.training import TrainerConfig, predict, train

    base = overridden(assignments)
    config = ModelConfig(**base["model"])
    started = time.perf_counter()

    def on_epoch(result: Any) -> None:
        shown = {k: round(v, 3) for k, v in result.metrics.items() if k in EPOCH_KEYS}
        print(f"  epoch {result.epoch} {time.perf_counter() - started:.0f} s {shown}", flush=True)

    trainer = TrainerConfig(**base["trainer"], progress_bar=False)
    result = train(config, trainer, data["train"], data["validation"], on_epoch=on_epoch)
    seconds = time.perf_counter() - started
    net = result.model
    assert net is not None
    validation = predict(config, net.state_dict(), data["validation"], model=net)
    test = predict(config, net.state_dict(), data["test"], model=net)
    chosen = choose_evidence_threshold(validation)
    return {
        "set": assignments or "(defaults)",
        "train_s": round(seconds),
        "updates": result.global_step,
        "test_evidence_f1_at_0.5": round(sentence_f1_macro(test), 3),
        "validation_threshold": chosen.value,
        "test_evidence_f1_at_threshold": round(
            sentence_f1_macro(with_evidence_threshold(test, chosen.value)), 3
        ),
        "test_criteria_f1": round(validation_metrics(test)["criteria"]["f1_macro"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", action="append", default=None, help="one arm's overrides")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    from mental_health_hpo.evaluation.baselines import fit_baselines

    torch.set_num_threads(args.threads)
    data = splits()
    baseline = fit_baselines(data["train"], data["validation"], data["test"]).metrics
    print(f"load average {os.getloadavg()[0]:.2f}; TF-IDF baselines on test: sentence-evidence "
          f"macro-F1 {baseline['sentence_evidence']['f1_macro']:.3f}, criteria macro-F1 "
          f"{baseline['criteria']['f1_macro']:.3f}", flush=True)  # fmt: skip
    for assignments in args.set or [""]:
        print(f"arm {assignments or '(defaults)'}", flush=True)
        print("RESULT " + json.dumps(run_arm(assignments, data)), flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
