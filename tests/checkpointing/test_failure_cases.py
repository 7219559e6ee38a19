"""Failure cases of a running trial: nothing duplicated, nothing good deleted, nothing left over."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from mental_health_hpo.checkpointing import RetentionPolicy
from mental_health_hpo.checkpointing._recovery import find_orphans
from tests.checkpointing.conftest import TinyNet, save_epochs, train_step, training_state
from tests.checkpointing.support import open_manager


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_disabled_and_dry_run_leave_a_committed_folder_byte_for_byte(tmp_path: Path) -> None:
    directory = tmp_path / "study_1" / "trial_0000" / "checkpoints"
    model = TinyNet()
    opt = torch.optim.AdamW(model.parameters())
    with open_manager(directory, check_disk=False) as manager:
        save_epochs(manager, model, opt, [0.4, 0.6])
    before = tree_digest(tmp_path)
    for kwargs in ({"enabled": False}, {"dry_run": True}):
        with open_manager(directory, **kwargs) as other:
            save_epochs(other, model, opt, [0.9, 0.1, 0.2], start=2)
            assert other.history()[-1].epoch == 4
    assert tree_digest(tmp_path) == before


def test_a_restart_after_quarantine_never_publishes_a_step_twice(tmp_path: Path) -> None:
    directory = tmp_path / "study_1" / "trial_0000" / "checkpoints"
    published: list[tuple[int, str]] = []
    model = TinyNet()
    opt = torch.optim.AdamW(model.parameters())

    def publish(record) -> None:
        published.append((record.step, record.timestamp))

    with open_manager(directory, on_commit=publish, check_disk=False) as manager:
        save_epochs(manager, model, opt, [0.4, 0.6])
        latest = manager.records()[-1]
    (directory / latest.id / "training_state.pt").write_bytes(b"garbage, not a pickle")
    with open_manager(directory, on_commit=publish, check_disk=False) as restarted:
        assert restarted.load_latest() is None  # refused and quarantined: start from epoch 0
        save_epochs(restarted, TinyNet(), opt, [0.5, 0.55, 0.7])
        journal = restarted.history()
    steps = [step for step, _ in published]
    assert len(steps) == len(set(steps)), f"a step was published twice: {published}"
    assert [h.step for h in journal] == sorted({h.step for h in journal})
    assert journal[-1].epoch == 2  # the new epoch beyond the old journal was published
    assert list((directory / ".quarantine").iterdir())


def test_temp_files_of_killed_writes_anywhere_in_the_trial_are_swept(tmp_path: Path) -> None:
    experiments = tmp_path / "experiments"
    trial = experiments / "study_1" / "trial_0000"
    trial.mkdir(parents=True)
    stale = [trial / ".tmp-trial.json.4242.deadbeef", trial / "logs" / ".tmp-trial.jsonl.1.ab"]
    stale[1].parent.mkdir()
    for path in stale:
        path.write_text("{")
    assert {o.path for o in find_orphans(experiments)} >= set(stale)  # the cleanup command
    with open_manager(trial / "checkpoints", check_disk=False) as manager:
        model = TinyNet()
        opt = torch.optim.AdamW(model.parameters())
        train_step(model, opt)
        manager.save(
            epoch=0,
            step=1,
            metrics={"f1": 0.2},
            weights=model.state_dict(),
            training_state=training_state(opt, 0),
        )
    assert not any(path.exists() for path in stale)
    assert not [p for p in experiments.rglob(".tmp-*")]


def test_keep_last_n_two_survives_a_corrupt_newest(tmp_path: Path) -> None:
    directory = tmp_path / "study_1" / "trial_0000" / "checkpoints"
    model = TinyNet()
    opt = torch.optim.AdamW(model.parameters())
    policy = RetentionPolicy(keep_last_n=2)
    with open_manager(directory, policy=policy, check_disk=False) as manager:
        save_epochs(manager, model, opt, [0.4, 0.6])
        newest = manager.records()[-1]
    (directory / newest.id / "model.safetensors").write_bytes(b"torn")
    with open_manager(directory, policy=policy, check_disk=False) as restarted:
        loaded = restarted.load_latest()
        assert loaded is not None and loaded.record.epoch == 0


def test_deferred_writer_fixes_the_bytes_before_returning(tmp_path: Path) -> None:
    """The deferred writer writes from the live tensors, so what it saves is the state at the
    call, even though the next step changes the tensors while the fsync is still pending."""
    directory = tmp_path / "study_1" / "trial_0000" / "checkpoints"
    weights = {"w": torch.full((1024,), 1.0)}
    with open_manager(directory, writer="deferred", check_disk=False) as manager:
        result = manager.save(epoch=0, step=1, metrics={"f1": 0.5}, weights=weights)
        assert result.pending and not result.written
        weights["w"].fill_(9.0)  # the next optimizer step, in place
        manager.flush()
        loaded = manager.load(result.checkpoint_id)
        assert torch.equal(loaded.weights["w"], torch.full((1024,), 1.0))
        manager.save(epoch=1, step=2, metrics={"f1": 0.6}, weights=weights)
    with open_manager(directory, writer="deferred") as reopened:
        assert [r.epoch for r in reopened.records()] == [1]


def test_saves_hash_on_the_way_in_and_the_deferred_writer_commits_beside_training(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """No save reads a file back to hash it: the digest is taken of the bytes on their way to
    storage. The deferred writer makes them durable (fsync, rename) on its thread; the sync
    writer before ``save`` returns, in the caller."""
    import threading

    from mental_health_hpo.workspace.storage import LocalFile, LocalStorage

    committed_on: list[str] = []
    read_back: list[str] = []
    real_commit, real_open = LocalFile.commit, LocalStorage.open

    def spy_commit(self: LocalFile, **kwargs: Any) -> int:
        if not self.key.endswith(".json"):
            committed_on.append(threading.current_thread().name)
        return real_commit(self, **kwargs)

    def spy_open(self: LocalStorage, key: str) -> Any:
        read_back.append(key)
        return real_open(self, key)

    monkeypatch.setattr(LocalFile, "commit", spy_commit)
    monkeypatch.setattr(LocalStorage, "open", spy_open)
    model = TinyNet()
    for writer in ("deferred", "sync"):
        committed_on.clear()
        read_back.clear()
        directory = tmp_path / writer / "study_1" / "trial_0000" / "checkpoints"
        with open_manager(directory, writer=writer, check_disk=False) as manager:
            state = training_state(torch.optim.AdamW(model.parameters()), 0)
            manager.save(epoch=0, step=1, metrics={"f1": 0.5}, weights=model.state_dict(),
                         training_state=state)  # fmt: skip
            during_save = list(committed_on)
            manager.flush()
        caller = threading.current_thread().name
        assert read_back == [], f"{writer}: read back {read_back}"
        assert len(committed_on) == 2, writer  # the weights and the training state
        if writer == "deferred":
            assert during_save == [] or caller not in during_save
            assert caller not in committed_on
        else:
            assert during_save == [caller, caller]
        with open_manager(directory, check_disk=False) as reopened:  # the digests verify
            loaded = reopened.load_latest()
        assert loaded is not None and loaded.training_state is not None
