"""Roll a stopped trial back to an earlier retained full checkpoint. Dry run by default::

    python -m mental_health_hpo.checkpointing.rollback TRIAL_DIR --to CHECKPOINT_ID [--apply]

Why a command: the manifest names what a trial resumes from, so rolling back is a manifest
edit, and an edit by hand (or with the core's private functions, as the runbook once did) is
how a trial gets torn. Here the new manifest is committed the way every save commits one (the
one before it kept as ``manifest.prev.json``), and only after the newer checkpoints' folders
were moved aside, not deleted, to ``<aside>/<study>/<trial>/`` with a copy of the manifest as
it was (``manifest.before-rollback.json``). Journal entries after the target go too, so the
re-trained epochs are journaled (and published) again.

Stop the trial's worker first (docs/operations.md, RR-005): a live worker would commit over it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mental_health_hpo.checkpointing._errors import CheckpointError
from mental_health_hpo.checkpointing._manifest import (
    CheckpointRecord,
    Manifest,
    read_manifest,
    write_manifest,
)
from mental_health_hpo.ops.locations import UnsupportedLocationError, local_folder
from mental_health_hpo.workspace.layout import CHECKPOINTS_DIRNAME, MANIFEST_NAME

__all__ = ["Rollback", "main", "plan_rollback"]

BACKUP_NAME = "manifest.before-rollback.json"


@dataclass(frozen=True)
class Rollback:
    """What rolling ``checkpoints_dir`` back to ``target`` does; nothing happens until
    :meth:`apply`."""

    checkpoints_dir: Path
    target: CheckpointRecord
    newer: tuple[CheckpointRecord, ...]
    manifest: Manifest
    aside: Path

    def apply(self) -> None:
        """Back up the manifest, move the newer checkpoints aside, then commit the new one."""
        self.aside.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.checkpoints_dir / MANIFEST_NAME, self.aside / BACKUP_NAME)
        for record in self.newer:
            folder = self.checkpoints_dir / record.id
            if folder.exists():
                shutil.move(str(folder), str(self.aside / record.id))
        step = self.target.step
        write_manifest(
            self.checkpoints_dir,
            replace(
                self.manifest,
                checkpoints=[r for r in self.manifest.checkpoints if r.step <= step],
                history=[h for h in self.manifest.history if h.step <= step],
            ),
        )


def plan_rollback(trial_dir: Path, target_id: str, aside_root: Path) -> Rollback:
    """The rollback of one trial folder to ``target_id``; raises :class:`CheckpointError`
    saying what to pass instead when the trial or the target cannot be rolled back to."""
    checkpoints_dir = trial_dir / CHECKPOINTS_DIRNAME
    manifest = read_manifest(checkpoints_dir)
    if manifest is None:
        raise CheckpointError(
            f"{checkpoints_dir / MANIFEST_NAME} does not exist: pass a trial folder "
            "(experiments/study_<name>/trial_<n>) with a committed checkpoint"
        )
    if manifest.finished:
        raise CheckpointError(
            f"{trial_dir} is finished: its resume state is pruned, there is nothing to resume"
        )
    full = [r for r in manifest.checkpoints if r.is_full]
    target = manifest.record(target_id)
    if target is None or not target.is_full:
        choices = ", ".join(r.id for r in full) or "none"
        what = "is not a full checkpoint" if target else "is not retained"
        raise CheckpointError(
            f"{target_id!r} {what} in {checkpoints_dir / MANIFEST_NAME}; "
            f"the full (resumable) ones are: {choices}"
        )
    newer = tuple(r for r in manifest.checkpoints if r.step > target.step)
    aside = aside_root / trial_dir.parent.name / trial_dir.name
    return Rollback(checkpoints_dir, target, newer, manifest, aside)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; prints the plan and carries it out only with ``--apply``."""
    parser = argparse.ArgumentParser(
        prog="python -m mental_health_hpo.checkpointing.rollback",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("trial_dir", help="experiments/study_<name>/trial_<n>")
    parser.add_argument("--to", required=True, dest="target", help="a retained full checkpoint")
    parser.add_argument(
        "--aside",
        default="rolled_back",
        help="where the newer checkpoints go (default: %(default)s)",
    )
    parser.add_argument("--apply", action="store_true", help="do it (default: dry run)")
    args = parser.parse_args(argv)
    try:  # Path("s3://b/x") would be the folder "s3:/b/x": a URL is never a path
        trial_dir = local_folder(args.trial_dir, "trial_dir")
        plan = plan_rollback(trial_dir, args.target, Path(args.aside))
    except (UnsupportedLocationError, CheckpointError) as error:
        print(error, file=sys.stderr)
        return 2
    moved = ", ".join(r.id for r in plan.newer) or "nothing"
    print(f"resume point: {plan.target.id} (epoch {plan.target.epoch}, step {plan.target.step})")
    print(f"moved aside to {plan.aside}: {moved}")
    if args.apply:
        plan.apply()
        print("rolled back; the next run of the study resumes the trial from there")
    else:
        print("dry run, pass --apply to roll back")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
