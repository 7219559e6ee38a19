"""CheckpointManager: save/commit/prune, resume, journal, modes, async, metric validation."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import torch

from mental_health_hpo.checkpointing import CheckpointError, RetentionPolicy, read_manifest
from mental_health_hpo.checkpointing import _serialize as serialize
from mental_health_hpo.checkpointing._errors import (
    AsyncSaveError,
    MetricNotFoundError,
    UnsafeCheckpointError,
)
from mental_health_hpo.checkpointing._protocol import validate_metric_name
from mental_health_hpo.training.seeds import restore_rng_state
from mental_health_hpo.workspace.hashing import sha256_file
from tests.checkpointing.conftest import save_epochs, train_step, training_state
from tests.checkpointing.support import finish, open_manager


def on_disk(manager) -> set[str]:
    manager.flush()
    return {p.name for p in manager.directory.iterdir() if p.is_dir()}


def test_save_prune_and_resume_restores_exact_state(make_manager, tiny) -> None:
    model, opt = tiny
    manager = make_manager()
    save_epochs(manager, model, opt, [0.2, 0.9, 0.4, 0.3])
    records = manager.records()
    assert [(r.id, r.kind) for r in records] == [
        ("ckpt-e0001-s000020", "weights"),
        ("ckpt-e0003-s000040", "full"),
    ]
    assert on_disk(manager) == {r.id for r in records}
    assert not (manager.directory / "ckpt-e0001-s000020" / "training_state.pt").exists()
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    rng_after_save = torch.rand(3)

    loaded = manager.load_latest()
    assert loaded is not None and loaded.record.id == "ckpt-e0003-s000040"
    for name, tensor in expected.items():
        assert torch.equal(loaded.weights[name], tensor)
    fresh = torch.optim.AdamW(model.parameters(), lr=0.01)
    fresh.load_state_dict(loaded.training_state["optimizer"])
    assert torch.equal(
        fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"]
    )
    restore_rng_state(loaded.training_state["rng"])
    assert torch.equal(torch.rand(3), rng_after_save)


def test_manifest_names_every_file_with_its_hash(make_manager, tiny) -> None:
    model, opt = tiny
    manager = make_manager(config_hash="cfg123")
    save_epochs(manager, model, opt, [0.5, 0.6])
    manifest = read_manifest(manager.directory)
    assert manifest is not None and manifest.config_hash == "cfg123"
    assert manifest.architecture and set(manifest.architecture["parameters"]) == {
        "encoder.weight",
        "encoder.bias",
        "head.weight",
        "head.bias",
    }
    for record in manifest.checkpoints:
        assert record.code_version and record.created_at and record.architecture_hash
        for entry in record.files.values():
            path = manager.directory / entry.path
            assert path.stat().st_size == entry.size
            assert sha256_file(path) == entry.sha256


def test_history_is_the_metrics_journal_even_for_pruned_and_skipped_epochs(
    make_manager, tiny
) -> None:
    model, opt = tiny
    committed = []
    manager = make_manager(
        policy=RetentionPolicy(min_interval_epochs=2), on_commit=committed.append
    )
    save_epochs(manager, model, opt, [0.1, 0.2, 0.3, 0.4, 0.5])
    history = manager.history()
    assert [h.epoch for h in history] == [0, 1, 2, 3, 4]
    assert [h.checkpoint_id is not None for h in history] == [True, False, True, False, True]
    assert [r.epoch for r in manager.records()] == [4]
    assert [c.epoch for c in committed] == [0, 1, 2, 3, 4]
    assert committed == history  # published only what is durable, with the journaled timestamp
    assert manager.last_committed_step() == 50
    reopened = make_manager(policy=RetentionPolicy(min_interval_epochs=2))
    assert reopened.history() == history  # derived from disk


def test_force_saves_inside_min_interval(make_manager, tiny) -> None:
    model, opt = tiny
    manager = make_manager(policy=RetentionPolicy(min_interval_epochs=5))
    save_epochs(manager, model, opt, [0.1])
    manager.save(epoch=1, step=20, metrics={"f1": 0.0}, weights=model.state_dict(), force=True)
    manager.flush()
    assert [r.epoch for r in manager.records()] == [0, 1]


def test_missing_metric_is_a_clear_error(make_manager, tiny) -> None:
    model, _ = tiny
    manager = make_manager(metric_name="val_f1")
    with pytest.raises(MetricNotFoundError, match=r"val_f1.*'loss'"):
        manager.save(epoch=0, step=1, metrics={"loss": 1.0}, weights=model.state_dict())
    with pytest.raises(MetricNotFoundError, match="val_f1"):
        validate_metric_name("val_f1", ["loss", "f1"])
    validate_metric_name("f1", {"f1": 1.0})
    assert read_manifest(manager.directory) is None


def test_unsafe_training_state_is_refused_before_writing(make_manager, tiny) -> None:
    model, _ = tiny
    manager = make_manager()
    with pytest.raises(UnsafeCheckpointError, match=r"training_state\['sampler'\]"):
        manager.save(
            epoch=0,
            step=1,
            metrics={"f1": 1.0},
            weights=model.state_dict(),
            training_state={"sampler": object()},
        )
    assert read_manifest(manager.directory) is None


def test_disabled_mode_writes_nothing_but_still_reports_metrics(
    tmp_path, make_manager, tiny
) -> None:
    model, opt = tiny
    seen = []
    manager = make_manager(directory=tmp_path / "off", enabled=False, on_commit=seen.append)
    save_epochs(manager, model, opt, [0.1, 0.2])
    assert [s.metrics["f1"] for s in seen] == [0.1, 0.2]
    assert [h.epoch for h in manager.history()] == [0, 1]
    assert manager.load_latest() is None
    assert not (tmp_path / "off").exists()


def test_dry_run_plans_without_writing(tmp_path, make_manager, tiny) -> None:
    model, opt = tiny
    manager = make_manager(directory=tmp_path / "dry", dry_run=True)
    results = []
    for epoch, value in enumerate([0.9, 0.1, 0.2]):
        train_step(model, opt)
        results.append(
            manager.save(
                epoch=epoch,
                step=epoch,
                metrics={"f1": value},
                weights=model.state_dict(),
                training_state=training_state(opt, epoch),
            )
        )
    assert not (tmp_path / "dry").exists()
    assert all(r.dry_run and not r.written for r in results)
    assert results[0].would_write["model.safetensors"] > 0
    assert results[1].plan is not None and results[1].plan.demote == ("ckpt-e0000-s000000",)
    assert results[2].plan is not None and results[2].plan.delete == ("ckpt-e0001-s000001",)


def test_async_save_snapshots_before_returning(make_manager, tiny) -> None:
    model, opt = tiny
    manager = make_manager(async_save=True)
    train_step(model, opt)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    manager.save(
        epoch=0,
        step=1,
        metrics={"f1": 0.5},
        weights=model.state_dict(),
        training_state=training_state(opt, 0),
    )
    with torch.no_grad():  # the next optimizer step mutates live parameters in place
        for p in model.parameters():
            p.add_(100.0)
    manager.flush()
    loaded = manager.load_latest()
    assert loaded is not None
    for name, tensor in before.items():
        assert torch.equal(loaded.weights[name], tensor)


def test_async_at_most_one_save_in_flight(make_manager, tiny, monkeypatch) -> None:
    model, _ = tiny
    active, peak = [0], [0]
    lock = threading.Lock()
    manager = make_manager(async_save=True)
    original = serialize.stage_checkpoint_files

    def slow_write(*args, **kwargs):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        try:
            return original(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(serialize, "stage_checkpoint_files", slow_write)
    for epoch in range(4):
        result = manager.save(
            epoch=epoch, step=epoch, metrics={"f1": 0.1}, weights=model.state_dict()
        )
        assert result.pending
    manager.close()
    assert peak[0] == 1
    assert len(manager.history()) == 4


def test_async_failure_surfaces_at_next_call(make_manager, tiny, monkeypatch) -> None:
    model, _ = tiny
    manager = make_manager(async_save=True)

    def boom(*args, **kwargs):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(serialize, "stage_checkpoint_files", boom)
    manager.save(epoch=0, step=1, metrics={"f1": 0.1}, weights=model.state_dict())
    with pytest.raises(AsyncSaveError, match="I/O error"):
        manager.flush()
    manager.save(epoch=1, step=2, metrics={"f1": 0.1}, weights=model.state_dict())
    with pytest.raises(AsyncSaveError):
        manager.close()
    assert read_manifest(manager.directory) is None
    assert not list(manager.directory.glob("ckpt-*"))


def test_context_manager_flushes_on_error(tmp_path, make_manager, tiny) -> None:
    model, _ = tiny
    manager = make_manager(async_save=True)
    with pytest.raises(RuntimeError, match="training blew up"), manager:
        manager.save(epoch=0, step=1, metrics={"f1": 0.3}, weights=model.state_dict())
        raise RuntimeError("training blew up")
    manifest = read_manifest(manager.directory)
    assert manifest is not None and [r.epoch for r in manifest.checkpoints] == [0]
    with pytest.raises(CheckpointError, match="closed"):
        manager.save(epoch=1, step=2, metrics={"f1": 0.3}, weights=model.state_dict())


def test_load_named_checkpoint_errors_clearly(make_manager, tiny) -> None:
    model, opt = tiny
    manager = make_manager()
    save_epochs(manager, model, opt, [0.9, 0.1])
    best = manager.best()
    assert [r.id for r in best] == ["ckpt-e0000-s000010"]
    loaded = manager.load(best[0].id)
    assert loaded.training_state is None  # demoted to weights-only
    with pytest.raises(CheckpointError, match=r"'ckpt-nope' is not in .*manifest\.json"):
        manager.load("ckpt-nope")


def test_startup_sweeps_uncommitted_leftovers(make_manager, tiny) -> None:
    model, opt = tiny
    manager = make_manager()
    save_epochs(manager, model, opt, [0.5])
    manager.close()
    d = manager.directory
    (d / ".tmp-manifest.json.1.abc").write_text("{")
    (d / "ckpt-e0009-s000090").mkdir()
    (d / "ckpt-e0009-s000090" / "model.safetensors").write_bytes(b"partial")
    (d / "ckpt-e0000-s000010" / ".tmp-training_state.pt.1.x").write_bytes(b"x")
    make_manager()
    assert sorted(p.name for p in d.rglob("*")) == [
        "ckpt-e0000-s000010",
        "manifest.json",
        "model.safetensors",
        "record.json",
        "training_state.pt",
    ]


def test_finish_drops_resume_state(make_manager, tiny) -> None:
    model, opt = tiny
    manager = make_manager()
    save_epochs(manager, model, opt, [0.3, 0.8, 0.5])
    finish(manager)
    manifest = read_manifest(manager.directory)
    assert manifest is not None and manifest.finished
    assert [(r.id, r.kind) for r in manifest.checkpoints] == [("ckpt-e0001-s000020", "weights")]
    assert not list(manager.directory.rglob("training_state.pt"))
    assert json.loads((manager.directory / "manifest.json").read_text())["finished"] is True


def test_async_buffer_reuse_never_corrupts_an_earlier_save(make_manager, monkeypatch) -> None:
    """Snapshot buffers alternate between saves; each committed checkpoint keeps its content."""
    manager = make_manager(
        async_save=True, policy=RetentionPolicy(keep_last_n=6), architecture=None
    )
    original = serialize.stage_checkpoint_files

    def slow_write(*args, **kwargs):
        time.sleep(0.03)  # keep a save in flight while the next snapshot is taken
        return original(*args, **kwargs)

    monkeypatch.setattr(serialize, "stage_checkpoint_files", slow_write)
    live = {"w": torch.zeros(64)}
    state = {"m": torch.zeros(64)}
    for epoch in range(6):
        live["w"].fill_(epoch)
        state["m"].fill_(-epoch)
        manager.save(
            epoch=epoch,
            step=epoch,
            metrics={"f1": 0.1},
            weights=live,
            training_state={"opt": state},
        )
        live["w"].fill_(999)  # the trainer mutates in place right after save returns
        state["m"].fill_(999)
    manager.flush()
    records = manager.records()
    assert len(records) == 6
    for record in records:
        loaded = manager.load(record.id)
        assert torch.equal(loaded.weights["w"], torch.full((64,), float(record.epoch)))
        assert torch.equal(
            loaded.training_state["opt"]["m"], torch.full((64,), -float(record.epoch))
        )


@pytest.mark.parametrize("async_save", [False, True])
def test_tied_weights_are_saved(make_manager, async_save: bool) -> None:
    shared = torch.arange(6.0)
    weights = {"embed.weight": shared, "decoder.weight": shared, "view": shared[:3]}
    manager = make_manager(async_save=async_save, architecture=None)
    manager.save(epoch=0, step=0, metrics={"f1": 0.2}, weights=weights, training_state={})
    loaded = manager.load_latest()
    assert loaded is not None
    assert torch.equal(loaded.weights["decoder.weight"], shared)
    assert torch.equal(loaded.weights["view"], shared[:3])


def test_failure_before_commit_discards_files_and_keeps_old_state(
    make_manager, tiny, monkeypatch
) -> None:
    from mental_health_hpo.checkpointing import _commit as commit_module

    model, opt = tiny
    manager = make_manager()
    save_epochs(manager, model, opt, [0.5])

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(commit_module, "commit_records", no_space)
    with pytest.raises(CheckpointError, match="needed for the next checkpoint"):
        save_epochs(manager, model, opt, [0.6], start=1)
    monkeypatch.undo()
    assert [r.epoch for r in manager.records()] == [0]
    assert on_disk(manager) == {"ckpt-e0000-s000010"}
    assert manager.load_latest().record.epoch == 0


def test_failure_after_commit_keeps_the_committed_checkpoint(
    make_manager, tiny, monkeypatch
) -> None:
    from mental_health_hpo.workspace.storage import LocalStorage

    model, opt = tiny
    manager = make_manager()
    save_epochs(manager, model, opt, [0.5])

    def broken_prune(self, prefix):
        raise OSError(5, "I/O error while pruning")

    monkeypatch.setattr(LocalStorage, "delete_prefix", broken_prune)
    # raised as it is by a sync commit, wrapped by a commit on the writer's thread
    with pytest.raises((OSError, AsyncSaveError), match="I/O error while pruning"):
        save_epochs(manager, model, opt, [0.6], start=1)
    monkeypatch.undo()
    assert [r.epoch for r in manager.records()] == [1]
    assert manager.load_latest().record.epoch == 1
    make_manager()  # start-up sweep removes the folder the failed prune left behind
    assert on_disk(manager) == {"ckpt-e0001-s000020"}


def test_dry_run_loads_the_committed_state(make_manager, tiny) -> None:
    model, opt = tiny
    save_epochs(make_manager(), model, opt, [0.5])
    dry = make_manager(dry_run=True)
    save_epochs(dry, model, opt, [0.9], start=1)
    loaded = dry.load_latest()
    assert loaded is not None and loaded.record.epoch == 0


def test_shared_snapshot_pool_is_reused_across_trials_but_never_by_two_open_managers(
    tmp_path,
) -> None:
    from mental_health_hpo.checkpointing._writers import SnapshotPool

    pool = SnapshotPool()
    weights = {"w": torch.ones(32)}

    def manager(name: str):
        directory = tmp_path / name / "checkpoints"
        return open_manager(directory, metric_name="f1", async_save=True, snapshot_pool=pool)

    with manager("trial_0") as first:
        for epoch in range(2):
            first.save(epoch=epoch, step=epoch, metrics={"f1": 0.1}, weights=weights)
        with manager("trial_1") as second, pytest.raises(CheckpointError, match="another open"):
            second.save(epoch=0, step=0, metrics={"f1": 0.1}, weights=weights)
    buffers = {id(t) for t in pool.buffers.values()}
    assert pool.nbytes == 32 * 4  # one buffer set, kept after the first manager closed
    with manager("trial_2") as third:
        weights["w"].fill_(7)
        third.save(epoch=0, step=0, metrics={"f1": 0.2}, weights=weights)
        third.flush()
        assert {id(t) for t in pool.buffers.values()} == buffers  # no new allocation
        loaded = third.load(third.records()[-1].id)
        assert torch.equal(loaded.weights["w"], torch.full((32,), 7.0))


def test_a_checkpoint_dropped_by_its_own_commit_leaves_no_folder(tmp_path: Path) -> None:
    """A replayed epoch can carry an older step: retention may drop the new checkpoint at once."""

    directory = tmp_path / "trial_0" / "checkpoints"
    with open_manager(directory, metric_name="f1", async_save=False, check_disk=False) as manager:
        for epoch, (step, value) in enumerate([(3, 0.9), (4, 0.5), (3, 0.1)]):
            manager.save(
                epoch=epoch,
                step=step,
                metrics={"f1": value},
                weights={"w": torch.full((4,), float(epoch))},
                training_state={"epoch": epoch},
            )
        manager.flush()
        manifest = read_manifest(directory)
        assert manifest is not None
        on_disk = sorted(p.name for p in directory.iterdir() if p.is_dir())
        assert on_disk == sorted(r.id for r in manifest.checkpoints)
