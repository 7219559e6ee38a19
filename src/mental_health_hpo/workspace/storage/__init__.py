"""The one storage seam every byte of a study passes through, and its backends.

:class:`Storage` is the interface (the contract is in ``_seam``'s docstring): keys under a root,
two-phase atomic writes, conditional creates, a fence that refuses a writer whose trial was
taken over (:class:`TrialTakenOverError`). Its backends: :class:`LocalStorage` (POSIX: temp
file, fsync, rename, directory fsync), :class:`ObjectStorage` (a bucket prefix behind a
write-behind local cache) and :class:`BucketFolder` (a bucket prefix, no cache, for a study's
small shared objects). :func:`storage_at` opens the one for a folder or a bucket prefix;
:func:`checkpoint_store` is what a running trial's checkpoints go to.

The everyday names (``Storage``, ``storage_at``, ``checkpoint_store``, ``TrialTakenOverError``)
are also on ``mental_health_hpo.workspace``; the rest is here for the checkpoint core, which
builds on the seam, and for the backends' tests and benches.
"""

from mental_health_hpo.workspace.storage._errors import TrialTakenOverError
from mental_health_hpo.workspace.storage._object_storage import (
    Keys,
    ObjectStorage,
    UploadFailedError,
    open_storage,
)
from mental_health_hpo.workspace.storage._seam import (
    Entry,
    LocalFile,
    LocalStorage,
    StagedObject,
    Storage,
    as_storage,
    put_staged,
    walk,
)
from mental_health_hpo.workspace.storage._study_storage import (
    BucketFolder,
    checkpoint_store,
    committed_checkpoint_dirs,
    has_manifest,
    is_local,
    storage_at,
    trial_layouts,
)

__all__ = [
    "BucketFolder",
    "Entry",
    "Keys",
    "LocalFile",
    "LocalStorage",
    "ObjectStorage",
    "StagedObject",
    "Storage",
    "TrialTakenOverError",
    "UploadFailedError",
    "as_storage",
    "checkpoint_store",
    "committed_checkpoint_dirs",
    "has_manifest",
    "is_local",
    "open_storage",
    "put_staged",
    "storage_at",
    "trial_layouts",
    "walk",
]
