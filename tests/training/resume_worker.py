"""Subprocess for the kill-and-resume test: trains a tiny config, can stall mid-epoch.

``python resume_worker.py MODEL_DIR CKPT_DIR [--stall-at-batch N --marker PATH]``: after N
training batches it writes MARKER and sleeps, so the parent can SIGKILL it at a known point
inside an epoch.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from data_helpers import make_model_input

from mental_health_hpo.checkpointing import RunCheckpoints
from mental_health_hpo.model import DualAgentModel, ModelConfig
from mental_health_hpo.training import TrainerConfig, train


def configs(model_dir: str) -> tuple[ModelConfig, TrainerConfig]:
    """The run the test compares: 2 epochs of 7 batches (4 optimizer steps), dropout on."""
    model = ModelConfig(encoder=model_dir, max_length=96, stride=24, dropout=0.2)
    trainer = TrainerConfig(
        epochs=2, batch_size=8, lr=2e-3, head_lr=5e-3, warmup_ratio=0.2, seed=5,
        layerwise_lr_decay=0.9, grad_accum_steps=2, progress_bar=False,
    )  # fmt: skip
    return model, trainer


def frames() -> tuple[Any, Any]:
    return make_model_input(6, "train", seed=1), make_model_input(3, "validation", seed=2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("checkpoint_dir")
    parser.add_argument("--stall-at-batch", type=int, default=0)
    parser.add_argument("--marker", default="")
    args = parser.parse_args()
    torch.set_num_threads(1)

    if args.stall_at_batch:
        seen = {"batches": 0}
        original = DualAgentModel.compute_loss

        def counting(self: DualAgentModel, outputs: Any, batch: Any) -> Any:
            if self.training:
                seen["batches"] += 1
                if seen["batches"] == args.stall_at_batch:
                    Path(args.marker).write_text("stalled")
                    time.sleep(120)  # the parent kills us here, mid-epoch
            return original(self, outputs, batch)

        DualAgentModel.compute_loss = counting  # type: ignore[method-assign]

    model_config, trainer_config = configs(args.model_dir)
    train_df, validation_df = frames()
    train(model_config, trainer_config, train_df, validation_df,
          checkpoints=RunCheckpoints(Path(args.checkpoint_dir)))  # fmt: skip


if __name__ == "__main__":
    main()
