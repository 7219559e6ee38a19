"""The checkpoint core's manager saving a trial on a bucket, as a child process tests SIGKILL.

``python manager_writer.py URL CACHE EPOCHS``: resumes from the bucket's newest checkpoint
(another worker's cache is never there), trains TinyNet one step per epoch and saves each epoch
through :class:`CheckpointManager` on :class:`ObjectStorage`; prints ``resumed <epoch|none>``,
then ``saved <epoch>`` once each save's uploads reached the bucket.
"""

from __future__ import annotations

import sys

import torch

from mental_health_hpo.checkpointing import CheckpointManager, CheckpointOptions, RetentionPolicy
from mental_health_hpo.workspace.storage import ObjectStorage
from tests.checkpointing.conftest import TinyNet, save_epochs


def main(url: str, cache: str, epochs: int) -> None:
    storage = ObjectStorage(url, cache)
    options = CheckpointOptions(
        metric_name="f1", policy=RetentionPolicy(), writer="sync", watch_disk=False
    )
    manager = CheckpointManager(storage, options)
    torch.manual_seed(0)
    model = TinyNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    loaded = manager.load_latest()
    start = 0
    if loaded is not None:
        model.load_state_dict(loaded.weights)
        optimizer.load_state_dict(loaded.training_state["optimizer"])
        start = loaded.record.epoch + 1
    print(f"resumed {loaded.record.epoch if loaded else 'none'}", flush=True)
    for epoch in range(start, start + epochs):
        save_epochs(manager, model, optimizer, [0.1 + 0.01 * epoch], start=epoch)
        storage.flush()
        print(f"saved {epoch}", flush=True)
    manager.close()
    storage.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
