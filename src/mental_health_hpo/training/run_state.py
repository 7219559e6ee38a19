"""Where a run stands, and the ``training_state`` a checkpoint keeps of it.

:class:`RunState` is the one mutable record of a run's progress: the loop advances it, the
checkpoint stores it (with the optimizer, schedule, scaler, sampler and RNG states), a resume
restores it. The dict layout is versioned: checkpoints already on disk must keep resuming, so a
change of keys bumps :data:`TRAINING_STATE_VERSION`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mental_health_hpo.checkpointing import MetricRecord
from mental_health_hpo.training.batching import LengthGroupedSampler
from mental_health_hpo.training.optim import Optimization
from mental_health_hpo.training.seeds import capture_rng_state, restore_rng_state

#: Bump when the layout of ``training_state`` changes.
TRAINING_STATE_VERSION = 1


@dataclass
class RunState:
    """Mutable state of one run: what a checkpoint must hold, besides the weights, to continue.

    ``epoch`` is the epoch being run (the next one once it has ended), ``position`` the batches
    of it already done, ``global_step`` the optimizer steps so far. ``best`` is maximised.
    """

    epoch: int = 0
    position: int = 0
    global_step: int = 0
    best: float = -math.inf
    best_epoch: int = -1
    history: list[dict[str, float]] = field(default_factory=list)

    def end_epoch(self, epoch: int, metrics: dict[str, float], objective: float) -> bool:
        """Record epoch ``epoch``'s metrics and move to the start of the next; True if best."""
        is_best = objective > self.best
        if is_best:
            self.best, self.best_epoch = objective, epoch
        self.history.append(metrics)
        self.epoch, self.position = epoch + 1, 0
        return is_best

    def replay(self, journal: Sequence[MetricRecord], metric: str) -> None:
        """The state of a run that had ended, rebuilt from its metrics journal with the rule
        :meth:`end_epoch` applies (the last epoch's checkpoint keeps no training state)."""
        for entry in journal:
            self.end_epoch(entry.epoch, dict(entry.metrics), float(entry.metrics[metric]))
        self.global_step = journal[-1].step if journal else self.global_step

    def training_state(
        self, sampler: LengthGroupedSampler, optimization: Optimization
    ) -> dict[str, Any]:
        """Everything but the weights, as weights_only-safe structures."""
        scaler = optimization.scaler
        return {
            "version": TRAINING_STATE_VERSION,
            "epoch": self.epoch,
            "position": self.position,
            "global_step": self.global_step,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "sampler": {"seed": sampler.seed, "epoch": self.epoch, "position": self.position},
            "optimizer": optimization.optimizer.state_dict(),
            "scheduler": optimization.scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else {},
            "rng": capture_rng_state(),
        }

    def restore(
        self,
        state: Mapping[str, Any],
        sampler: LengthGroupedSampler,
        optimization: Optimization,
    ) -> None:
        """Continue from ``state`` (a :meth:`training_state`): this run, the sampler's position,
        the optimizer, schedule and scaler, and every RNG. ``history`` comes from the journal."""
        if int(state.get("version", -1)) != TRAINING_STATE_VERSION:
            raise ValueError(f"training_state version {state.get('version')} is not supported")
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self.global_step = int(state["global_step"])
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        sampler.load_state_dict(dict(state["sampler"]))
        optimization.optimizer.load_state_dict(state["optimizer"])
        optimization.scheduler.load_state_dict(state["scheduler"])
        if optimization.scaler is not None and state.get("scaler"):
            optimization.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])


__all__ = ["TRAINING_STATE_VERSION", "RunState"]
