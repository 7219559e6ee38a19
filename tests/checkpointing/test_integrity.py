"""Verified loads: every kind of damage is caught, skipped with a warning, and falls back."""

from __future__ import annotations

import io
import json
import logging
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from mental_health_hpo.checkpointing import (
    IncompatibleCheckpointError,
    RetentionPolicy,
    architecture_signature,
    read_manifest,
)
from mental_health_hpo.checkpointing._errors import CheckpointIntegrityError
from mental_health_hpo.checkpointing._recovery import find_orphans, remove_orphans
from mental_health_hpo.workspace.hashing import sha256_bytes
from tests.checkpointing.conftest import HEADS, TinyNet, save_epochs

LATEST = "ckpt-e0002-s000030"
PREVIOUS = "ckpt-e0001-s000020"


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def delete(path: Path) -> None:
    path.unlink()


@pytest.fixture
def two_full(make_manager, tiny):
    model, opt = tiny
    manager = make_manager(policy=RetentionPolicy(keep_last_n=2))
    save_epochs(manager, model, opt, [0.1, 0.2, 0.3])
    assert [r.id for r in manager.records() if r.is_full] == [PREVIOUS, LATEST]
    return manager


@pytest.mark.parametrize("damage", [flip_byte, truncate, delete])
@pytest.mark.parametrize("filename", ["model.safetensors", "training_state.pt"])
def test_damage_is_skipped_and_previous_loads(
    two_full, damage: Callable[[Path], None], filename: str, caplog
) -> None:
    damage(two_full.directory / LATEST / filename)
    with caplog.at_level(logging.WARNING):
        loaded = two_full.load_latest()
    assert loaded is not None and loaded.record.id == PREVIOUS
    assert any(LATEST in r.getMessage() and "skipping" in r.getMessage() for r in caplog.records)
    # the damaged one leaves the manifest (quarantined) so it is neither newest nor best again
    assert LATEST not in {r.id for r in two_full.records()}
    assert any("quarantined" in o.reason for o in find_orphans(two_full.directory.parent.parent))


def test_named_load_of_damaged_checkpoint_fails_clearly(two_full) -> None:
    flip_byte(two_full.directory / LATEST / "model.safetensors")
    with pytest.raises(
        CheckpointIntegrityError, match=f"cannot load checkpoint '{LATEST}'.*SHA-256"
    ):
        two_full.load(LATEST)


def test_nothing_valid_means_start_from_epoch_zero(two_full, caplog) -> None:
    for ckpt in (LATEST, PREVIOUS):
        truncate(two_full.directory / ckpt / "training_state.pt")
    with caplog.at_level(logging.WARNING):
        assert two_full.load_latest() is None
    assert any("starting from epoch 0" in r.getMessage() for r in caplog.records)


def test_changed_architecture_is_refused(two_full, make_manager) -> None:
    other = architecture_signature(TinyNet(hidden=16), HEADS)
    manager = make_manager(architecture=other)
    assert manager.load_latest() is None
    with pytest.raises(IncompatibleCheckpointError, match="architecture"):
        manager.load(LATEST)
    heads = architecture_signature(TinyNet(), {"head": "span"})
    with pytest.raises(IncompatibleCheckpointError):
        make_manager(architecture=heads).load(LATEST)


def test_weights_swapped_for_other_architecture_even_with_matching_hash(two_full) -> None:
    """An attacker (or a bad copy) rewrites weights and manifest hash consistently."""
    from safetensors.torch import save

    path = two_full.directory / LATEST / "model.safetensors"
    data = save({"encoder.weight": torch.zeros(16, 4)})
    path.write_bytes(data)
    manifest_file = two_full.directory / "manifest.json"
    doc = json.loads(manifest_file.read_text())
    for record in doc["checkpoints"]:
        if record["id"] == LATEST:
            record["files"]["model.safetensors"].update(sha256=sha256_bytes(data), size=len(data))
    manifest_file.write_text(json.dumps(doc))
    with pytest.raises(IncompatibleCheckpointError, match="missing parameter"):
        two_full.load(LATEST)
    assert two_full.load_latest().record.id == PREVIOUS


class Payload:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_planted_pickle_payload_is_never_executed(make_manager, two_full, tmp_path) -> None:
    marker = tmp_path / "executed"
    buffer = io.BytesIO()
    torch.save({"optimizer": Payload(marker)}, buffer)
    evil = buffer.getvalue()
    (two_full.directory / LATEST / "training_state.pt").write_bytes(evil)
    # make the manifest agree, as an attacker with write access would
    manifest_file = two_full.directory / "manifest.json"
    doc = json.loads(manifest_file.read_text())
    for record in doc["checkpoints"]:
        if record["id"] == LATEST:
            record["files"]["training_state.pt"].update(sha256=sha256_bytes(evil), size=len(evil))
    manifest_file.write_text(json.dumps(doc))
    (two_full.directory / PREVIOUS / "evil.pkl").write_bytes(pickle.dumps(Payload(marker)))
    orphans = [o for o in find_orphans(tmp_path) if o.path.name == "evil.pkl"]
    assert len(orphans) == 1 and orphans[0].reason == "file not in the manifest"
    remove_orphans(orphans)
    assert not marker.exists()
    assert not (two_full.directory / PREVIOUS / "evil.pkl").exists()
    two_full.close()  # the next process to resume the trial meets the planted state (the open
    # manager would refuse to commit over a manifest changed under it: its storage's fence)

    loaded = make_manager(policy=RetentionPolicy(keep_last_n=2)).load_latest()
    assert loaded is not None and loaded.record.id == PREVIOUS
    assert not marker.exists()
    # control: the payload is live; a plain unpickle would have run it
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(control)))
    assert control.read_text() == "pwned"


def test_corrupt_manifest_is_set_aside_and_its_checkpoints_recovered(
    make_manager, tiny, caplog
) -> None:
    model, opt = tiny
    manager = make_manager(policy=RetentionPolicy(keep_last_n=2))
    save_epochs(manager, model, opt, [0.5, 0.7])
    journal = [(h.step, h.metrics["f1"], h.timestamp) for h in manager.history()]
    manager.close()
    (manager.directory / "manifest.json").write_text('{"checkpoints": [')
    with caplog.at_level(logging.WARNING):
        fresh = make_manager(policy=RetentionPolicy(keep_last_n=2))
    assert list((fresh.directory / ".quarantine").glob("manifest-*.json"))
    assert any("unreadable" in r.getMessage() for r in caplog.records)
    # The still-valid checkpoint files were recovered, not deleted as orphans.
    loaded = fresh.load_latest()
    assert loaded is not None and loaded.record.epoch == 1
    assert [r.epoch for r in fresh.records()] == [0, 1]
    assert (fresh.directory / "ckpt-e0000-s000010" / "model.safetensors").exists()
    recovered = read_manifest(fresh.directory)
    assert recovered is not None
    assert [(h.step, h.metrics["f1"], h.timestamp) for h in recovered.history] == journal


def test_unrecoverable_manifest_starts_afresh(make_manager, tiny) -> None:
    model, opt = tiny
    manager = make_manager()
    save_epochs(manager, model, opt, [0.5])
    manager.close()
    for junk in manager.directory.rglob("record.json"):
        junk.write_text("{")
    (manager.directory / "manifest.json").write_text('{"checkpoints": [')
    fresh = make_manager()
    assert fresh.load_latest() is None
    assert not list(fresh.directory.glob("ckpt-*"))  # unaccountable files are swept
