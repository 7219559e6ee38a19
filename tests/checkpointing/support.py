"""Open checkpoint managers from the keyword spellings the tests read best."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mental_health_hpo.checkpointing import (
    Checkpointer,
    CheckpointManager,
    CheckpointOptions,
    CheckpointSettings,
    RetentionPolicy,
    RunCheckpoints,
    StudyRetention,
)
from mental_health_hpo.checkpointing._study import finish_trial
from mental_health_hpo.checkpointing._writers import SnapshotPool
from mental_health_hpo.workspace.layout import study_of
from mental_health_hpo.workspace.locks import FileStudyLock


def open_manager(
    directory: str | Path,
    *,
    metric_name: str = "f1",
    policy: RetentionPolicy | None = None,
    architecture: dict[str, Any] | None = None,
    config_hash: str = "",
    async_save: bool = False,
    enabled: bool = True,
    dry_run: bool = False,
    check_disk: bool = True,
    on_commit: Callable[[Any], None] | None = None,
    snapshot_pool: SnapshotPool | None = None,
    writer: str | None = None,
) -> Any:
    """A checkpointer with the production writer (``auto``) unless ``writer`` or ``async_save``
    names another; background writers get their own pool unless one is given.

    A disabled or dry run is opened as the trainer opens one (:class:`RunCheckpoints`); a real
    one is the :class:`CheckpointManager` itself, so a test can turn its disk guard off."""
    mode = "disabled" if not enabled else "dry_run" if dry_run else "write"
    policy = policy or RetentionPolicy()
    kind: Any = writer or ("async" if async_save else "auto")
    pool = snapshot_pool if snapshot_pool is not None else SnapshotPool()
    if mode != "write":
        run = RunCheckpoints(Path(directory), CheckpointSettings(policy, mode, kind), pool)
        return run.open(
            metric_name=metric_name,
            architecture=architecture,
            config_hash=config_hash,
            on_commit=on_commit,
        )
    options = CheckpointOptions(
        metric_name=metric_name,
        policy=policy,
        writer=kind,
        architecture=architecture,
        config_hash=config_hash,
        watch_disk=check_disk,
    )
    return CheckpointManager(directory, options, on_commit=on_commit, snapshot_pool=pool)


def finish(manager: Checkpointer, keep_best_trials: int | None = None) -> None:
    """What the study runner does when a trial ends: the study-retention service."""
    manager.flush()
    directory = Path(manager.directory)  # type: ignore[attr-defined]
    policy: RetentionPolicy = manager.policy  # type: ignore[attr-defined]
    study = study_of(directory)
    if study is None:
        finish_trial(directory, manager.metric_name)  # type: ignore[attr-defined]
        return
    if keep_best_trials is not None:
        import dataclasses

        policy = dataclasses.replace(policy, keep_best_trials=keep_best_trials)
    StudyRetention(
        study.path, policy, manager.metric_name, FileStudyLock(study.path)
    ).trial_finished(directory.parent)  # type: ignore[attr-defined]
