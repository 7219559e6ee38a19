"""One training pass over the epoch's batches, and the check that may end it early.

The batch order of an epoch is a pure function of (seed, epoch): :class:`EpochLoop` runs epoch
``state.epoch`` from ``state.position`` (the batches already done), so a resumed epoch replays
the same batches. Gradients are accumulated over ``grad_accum_steps`` batches; the last group of
an epoch may be shorter and is averaged over its own size.

:class:`StopCheck` is how a caller ends training inside an epoch (a trial's time budget): it is
asked every ``every_steps`` optimizer steps, and an epoch it ends is dropped by the trainer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader

from mental_health_hpo.model import DualAgentModel
from mental_health_hpo.training.batching import DynamicPaddingCollator, LengthGroupedSampler
from mental_health_hpo.training.config import TrainerConfig
from mental_health_hpo.training.devices import autocast, to_device
from mental_health_hpo.training.features import WindowFeatures
from mental_health_hpo.training.optim import Optimization
from mental_health_hpo.training.progress import progress
from mental_health_hpo.training.run_state import RunState
from mental_health_hpo.training.seeds import data_generator, worker_init_fn


@dataclass(frozen=True)
class StopCheck:
    """Ends training inside an epoch once ``should_stop()`` returns True.

    Asked after every ``every_steps``-th optimizer step of the run (``global_step`` counts
    across epochs and resumes), so training goes on at most ``every_steps`` steps past the
    moment the predicate turns True. The predicate is the caller's (a deadline, a flag);
    ``every_steps`` keeps one that is not free, such as a database read, off most steps.
    Not asked at an epoch's last step: a fully trained epoch is validated and committed, and
    the epoch's end is the caller's to judge (``on_epoch``). Validation is not interrupted.
    """

    should_stop: Callable[[], bool]
    every_steps: int = 10

    def __post_init__(self) -> None:
        if self.every_steps < 1:
            raise ValueError(f"StopCheck.every_steps must be >= 1, got {self.every_steps}")

    def due(self, global_step: int) -> bool:
        """True when ``global_step`` is a check step and the predicate says stop."""
        return global_step % self.every_steps == 0 and bool(self.should_stop())


def batches_per_epoch(sampler: LengthGroupedSampler, config: TrainerConfig) -> int:
    """The sampler's batches, capped by ``max_steps_per_epoch`` updates."""
    full = len(sampler)
    if config.max_steps_per_epoch is None:
        return full
    return min(full, config.max_steps_per_epoch * config.grad_accum_steps)


def steps_per_epoch(sampler: LengthGroupedSampler, config: TrainerConfig) -> int:
    """Optimizer steps of one epoch (a short last accumulation group is one step too)."""
    return math.ceil(batches_per_epoch(sampler, config) / config.grad_accum_steps)


@dataclass(frozen=True)
class EpochTotals:
    """What one :meth:`EpochLoop.run` call did (only its own batches after a resume)."""

    loss_sum: float
    batches: int
    samples: int
    #: The stop check fired: the epoch did not reach its last batch.
    stopped: bool = False

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(1, self.batches)


@dataclass
class EpochLoop:
    """The parts every training pass of one run shares: model, data, optimization, settings."""

    net: DualAgentModel
    features: WindowFeatures
    sampler: LengthGroupedSampler
    collate: DynamicPaddingCollator
    optimization: Optimization
    config: TrainerConfig
    device: torch.device
    amp_dtype: torch.dtype | None = None

    def run(self, state: RunState, stop: StopCheck | None = None) -> EpochTotals:
        """Train epoch ``state.epoch`` from batch ``state.position``; advances ``state``."""
        if state.position == 0:
            self.sampler.set_epoch(state.epoch)
        accum = self.config.grad_accum_steps
        n_batches = batches_per_epoch(self.sampler, self.config)
        bar = progress(
            self._batches(state.epoch, state.position, n_batches),
            total=n_batches,
            initial=state.position,
            desc=f"epoch {state.epoch}",
            enabled=self.config.progress_bar,
            position=1,
        )
        loss_sum = torch.zeros((), device=self.device)
        batches = samples = 0
        stopped = False
        for index, cpu_batch in bar:
            batch = to_device(cpu_batch, self.device)
            group_start = index - index % accum
            group_size = min(accum, n_batches - group_start)
            with autocast(self.device, self.amp_dtype):
                loss = self.net.compute_loss(self.net(batch), batch)["loss"]
            self.optimization.backward(loss / group_size)
            loss_sum += loss.detach().float()
            batches += 1
            samples += int(batch["input_ids"].shape[0])
            state.position = index + 1
            if index + 1 == group_start + group_size:
                self.optimization.step(self.net)
                state.global_step += 1
                finished = index + 1 == n_batches  # a trained epoch is validated, never dropped
                if stop is not None and not finished and stop.due(state.global_step):
                    stopped = True
                    break
        bar.close()
        return EpochTotals(float(loss_sum), batches, samples, stopped)

    def _batches(
        self, epoch: int, start: int, stop: int
    ) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        """(batch index, batch) from ``start`` (the sampler already skips done batches) to
        ``stop``; ``islice`` stops before fetching batch ``stop``, so a capped epoch collates
        nothing extra."""
        loader: DataLoader[Any] = DataLoader(
            self.features,  # type: ignore[arg-type]
            batch_sampler=self.sampler,
            collate_fn=self.collate,
            num_workers=self.config.num_workers,
            worker_init_fn=worker_init_fn if self.config.num_workers else None,
            generator=data_generator(self.config.seed + epoch),
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )
        return enumerate(itertools.islice(loader, max(0, stop - start)), start=start)


__all__ = ["EpochLoop", "EpochTotals", "StopCheck", "batches_per_epoch", "steps_per_epoch"]
