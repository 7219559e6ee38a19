"""Length-grouped batches and dynamic padding: short posts are not padded to the longest.

``LengthGroupedSampler`` is a batch sampler for ``torch.utils.data.DataLoader(batch_sampler=)``:
the epoch's batch plan is a pure function of (lengths, batch_size, seed, epoch), so a resumed
run rebuilds the same plan and skips the batches already done (``start_batch`` /
``load_state_dict``). ``DynamicPaddingCollator`` pads each batch to its own longest window.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from mental_health_hpo.model.losses import IGNORE_INDEX


class LengthGroupedSampler:
    """Yields lists of indices; windows of similar length share a batch.

    Shuffled (``shuffle=True``): indices are permuted with ``seed + epoch``, cut into
    mega-batches of ``batch_size * group_factor``, each sorted by length (longest first) and cut
    into batches, and the batch order is shuffled again. Unshuffled (evaluation): all indices
    sorted by length, longest first (stable). ``position`` is the number of batches of the
    current epoch already yielded.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        epoch: int = 0,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        group_factor: int = 50,
        start_batch: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = epoch
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.group_factor = group_factor
        self.position = start_batch

    def batches(self) -> list[list[int]]:
        """The whole batch plan of the current epoch (deterministic)."""
        count = len(self.lengths)
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
            plan = [
                order[i : i + self.batch_size].tolist() for i in range(0, count, self.batch_size)
            ]
            return self._drop_short(plan)
        rng = np.random.default_rng([self.seed, self.epoch])
        permuted = rng.permutation(count)
        mega = self.batch_size * self.group_factor
        plan = []
        for begin in range(0, count, mega):
            group = permuted[begin : begin + mega]
            group = group[np.argsort(-self.lengths[group], kind="stable")]
            plan.extend(
                group[i : i + self.batch_size].tolist()
                for i in range(0, len(group), self.batch_size)
            )
        plan = self._drop_short(plan)
        return [plan[i] for i in rng.permutation(len(plan))]

    def _drop_short(self, plan: list[list[int]]) -> list[list[int]]:
        if self.drop_last:
            return [batch for batch in plan if len(batch) == self.batch_size]
        return plan

    def __len__(self) -> int:
        """Batches in a full epoch (including those already yielded).

        Mega-batches are whole multiples of ``batch_size`` except the last, so only the last
        batch of the epoch can be short, shuffled or not.
        """
        full, rest = divmod(len(self.lengths), self.batch_size)
        return full + int(rest > 0 and not self.drop_last)

    def __iter__(self) -> Iterator[list[int]]:
        plan = self.batches()
        while self.position < len(plan):
            batch = plan[self.position]
            self.position += 1
            yield batch

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its first batch."""
        self.epoch = epoch
        self.position = 0

    def state_dict(self) -> dict[str, int]:
        """Enough to continue mid-epoch: seed, epoch and batches already yielded."""
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])


#: Padding value of each per-token key (the rest are per-window and stacked as they are).
TOKEN_PADDING: dict[str, int] = {
    "input_ids": 0,  # replaced by the tokenizer's pad id
    "token_type_ids": 0,
    "attention_mask": 0,
    "context_mask": 0,
    "sentence_ids": -1,
}


class DynamicPaddingCollator:
    """Pads a list of ``WindowFeatures`` items to the longest in the batch; returns tensors.

    Output keys and shapes are documented in ``mental_health_hpo.model.dual_agent``.
    ``pad_to_multiple_of`` rounds the padded length up (tensor-core friendly on GPUs).
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None) -> None:
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        length = max(len(item["input_ids"]) for item in items)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch: dict[str, torch.Tensor] = {}
        for key, fill in TOKEN_PADDING.items():
            if key == "attention_mask":
                rows = [np.ones(len(item["input_ids"]), dtype=np.int64) for item in items]
            elif key in items[0]:
                rows = [np.asarray(item[key]) for item in items]
            else:
                continue
            value = self.pad_token_id if key == "input_ids" else fill
            padded = np.full((len(items), length), value, dtype=np.int64)
            for row, values in enumerate(rows):
                padded[row, : len(values)] = values
            batch[key] = torch.from_numpy(padded)
        batch["context_mask"] = batch["context_mask"].bool()
        batch["labels"] = torch.from_numpy(np.stack([item["labels"] for item in items])).float()
        for key in ("criterion_ids", "start_positions", "end_positions", "sentence_targets"):
            batch[key] = torch.from_numpy(np.stack([item[key] for item in items])).long()
        if "sentence_evidence" in items[0]:
            batch["sentence_evidence"] = _pad_sentence_evidence(
                [item["sentence_evidence"] for item in items]
            )
        batch["window_index"] = torch.tensor([item["window_index"] for item in items])
        return batch


def _pad_sentence_evidence(targets: Sequence[np.ndarray]) -> torch.Tensor:
    """(B, C, S_max) long of per-window (C, S_i) targets; padding and unknown are ignored (-100).

    The model masks sentences a window does not have, so padded columns never carry a loss.
    """
    labels = max(t.shape[0] for t in targets)
    sentences = max(1, max(t.shape[1] for t in targets))
    padded = np.full((len(targets), labels, sentences), IGNORE_INDEX, dtype=np.int64)
    for row, target in enumerate(targets):
        values = target.astype(np.int64)
        values[values < 0] = IGNORE_INDEX
        padded[row, : values.shape[0], : values.shape[1]] = values
    return torch.from_numpy(padded)
