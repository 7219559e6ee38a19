"""Cleanup: finds temp files, unnamed files, stray trials; removes them only with --apply."""

from __future__ import annotations

from pathlib import Path

import torch

from mental_health_hpo.checkpointing._recovery import find_orphans
from mental_health_hpo.checkpointing.cleanup import main
from tests.checkpointing.conftest import TinyNet, save_epochs
from tests.checkpointing.support import open_manager


def build(tmp_path: Path) -> Path:
    experiments = tmp_path / "experiments"
    model = TinyNet()
    opt = torch.optim.AdamW(model.parameters())
    with open_manager(
        experiments / "study_1" / "trial_0" / "checkpoints", metric_name="f1", async_save=False
    ) as manager:
        save_epochs(manager, model, opt, [0.2, 0.4])
    ckpts = experiments / "study_1" / "trial_0" / "checkpoints"
    (ckpts / ".tmp-manifest.json.99.deadbeef").write_text("{")
    (ckpts / "ckpt-e0005-s000050").mkdir()
    (ckpts / "ckpt-e0001-s000020" / "notes.txt").write_text("x")
    (experiments / "trial_9" / "checkpoints").mkdir(parents=True)
    return experiments


def test_finds_each_kind_of_orphan(tmp_path: Path) -> None:
    experiments = build(tmp_path)
    reasons = {o.path.name: o.reason for o in find_orphans(experiments)}
    assert reasons == {
        ".tmp-manifest.json.99.deadbeef": "temp file of an interrupted write",
        "ckpt-e0005-s000050": "not in the manifest",
        "notes.txt": "file not in the manifest",
        "trial_9": "trial folder of no study",
    }


def test_cli_is_dry_run_by_default_then_applies(tmp_path: Path, capsys) -> None:
    experiments = build(tmp_path)
    assert main([str(experiments)]) == 0
    assert "dry run" in capsys.readouterr().out
    assert len(find_orphans(experiments)) == 4
    assert main([str(experiments), "--apply"]) == 0
    assert "removed 4 orphans" in capsys.readouterr().out
    assert find_orphans(experiments) == []
    assert (experiments / "study_1" / "trial_0" / "checkpoints" / "manifest.json").exists()
    with open_manager(
        experiments / "study_1" / "trial_0" / "checkpoints", metric_name="f1", async_save=False
    ) as manager:
        assert manager.load_latest() is not None
