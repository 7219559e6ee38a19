"""The rollback command (docs/operations.md, RR-005): a stopped trial resumes from the checkpoint
it was rolled back to, its newer checkpoints kept aside, and bad input changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mental_health_hpo.checkpointing import RetentionPolicy, read_manifest
from tests.checkpointing.conftest import save_epochs

KEEP_THREE = RetentionPolicy(keep_last_n=3)


def _rollback(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mental_health_hpo.checkpointing.rollback", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_rolled_back_trial_resumes_from_the_target(tmp_path: Path, make_manager, tiny) -> None:
    model, optimizer = tiny
    manager = make_manager(policy=KEEP_THREE)
    save_epochs(manager, model, optimizer, [0.5, 0.6, 0.7])
    manager.close()
    trial = tmp_path / "study_1" / "trial_0"
    checkpoints = trial / "checkpoints"
    before = read_manifest(checkpoints)
    assert before is not None and len(before.checkpoints) == 3 and len(before.history) == 3
    target = min(before.checkpoints, key=lambda r: r.step).id
    newest = max(before.checkpoints, key=lambda r: r.step).id
    manifest_before = (checkpoints / "manifest.json").read_bytes()

    dry = _rollback(tmp_path, str(trial), "--to", target)
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout and newest in dry.stdout
    assert (checkpoints / "manifest.json").read_bytes() == manifest_before  # nothing changed

    done = _rollback(tmp_path, str(trial), "--to", target, "--apply")
    assert done.returncode == 0, done.stderr
    after = read_manifest(checkpoints)
    assert after is not None
    assert [r.id for r in after.checkpoints] == [target]
    assert [h.epoch for h in after.history] == [0]  # epochs 1 and 2 are journaled again
    aside = tmp_path / "rolled_back" / "study_1" / "trial_0"
    assert (aside / newest).is_dir() and not (checkpoints / newest).exists()  # kept, not deleted
    assert (aside / "manifest.before-rollback.json").read_bytes() == manifest_before

    resumed = make_manager(policy=KEEP_THREE).load_latest()
    assert resumed is not None and resumed.record.id == target


@pytest.mark.parametrize(
    ("target", "says"),
    [("ckpt-e0009-s000100", "is not retained"), (None, "does not exist")],
)
def test_bad_input_is_refused_with_what_to_pass_and_changes_nothing(
    tmp_path: Path, make_manager, tiny, target: str | None, says: str
) -> None:
    model, optimizer = tiny
    manager = make_manager(policy=KEEP_THREE)
    save_epochs(manager, model, optimizer, [0.5, 0.6])
    manager.close()
    trial = tmp_path / "study_1" / "trial_0"
    manifest = (trial / "checkpoints" / "manifest.json").read_bytes()
    ids = [r["id"] for r in json.loads(manifest)["checkpoints"]]
    folder = trial if target else tmp_path / "study_1"  # the study folder is not a trial
    done = _rollback(tmp_path, str(folder), "--to", target or ids[0], "--apply")
    assert done.returncode == 2
    assert says in done.stderr
    if target:
        assert all(i in done.stderr for i in ids), done.stderr  # the ids it can roll back to
    assert (trial / "checkpoints" / "manifest.json").read_bytes() == manifest
    assert not (tmp_path / "rolled_back").exists()
