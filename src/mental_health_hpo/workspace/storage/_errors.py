"""The storage seam's refusal: the one error a caller of :class:`~._seam.Storage` tells apart.

Why here and not in the checkpoint core: the refusal is the storage's own (a POSIX fence or a
bucket's ETag precondition says another writer owns the files), and the backends that raise it
sit below every package that writes into the experiments tree.
"""

from __future__ import annotations


class TrialTakenOverError(Exception):
    """Another writer owns this trial's files; this write was refused.

    Raised when another worker committed to this trial's checkpoints (its lease expired while
    this one stalled, and the trial was taken over), or the checkpoint id a save would write
    exists already: nothing of the other worker's is touched, and this worker must leave the
    trial to its new owner. Not a :class:`~mental_health_hpo.checkpointing.CheckpointError`:
    nothing is wrong with any checkpoint, the trial is someone else's now.
    """
