"""The experiments tree, shared by every package that writes into it.

Where each file of a study lives (``layout``), how a file is written so that no reader ever sees
half of it (``atomic``), how bytes are hashed (``hashing``), the study lock (``locks``) and the
one storage seam every study byte passes through (``storage``: a folder or a bucket prefix).
The checkpoint core, tracking and the hpo runner all write into the same tree, so these belong
to none of them. Never imports kedro or mlflow.

The face: :func:`storage_at` opens the :class:`Storage` of a folder or a bucket prefix (every
study file goes through it); a running trial's checkpoints go to :func:`checkpoint_store` (in a
bucket: a write-behind local cache, uploaded and removed when the trial ends); a write that
another worker's ownership of the trial refuses raises :class:`TrialTakenOverError`.
"""

from mental_health_hpo.workspace.storage import (
    Storage,
    TrialTakenOverError,
    checkpoint_store,
    storage_at,
)

__all__ = ["Storage", "TrialTakenOverError", "checkpoint_store", "storage_at"]
