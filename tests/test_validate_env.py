"""``python -m mental_health_hpo.validate_env`` on a temp copy of the project, as make runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import copy_project
from servers import MlflowServer

import mental_health_hpo


def _run(
    project: Path, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # The sources under test, whatever the child's working directory (PYTHONPATH may be "src").
    package_root = str(Path(mental_health_hpo.__file__).parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]),
        **(extra_env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "mental_health_hpo.validate_env", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_ok_project_prints_table_and_json_and_exits_0(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    run = _run(project)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["check", "status"]  # the table first
    result = json.loads(lines[-1])  # then the JSON result
    assert result["ok"] is True
    names = {c["name"]: c for c in result["checks"]}
    assert {"python", "torch", "cuda", "mlflow_store", "optuna_storage", "disk"} <= set(names)
    assert str(project / "mlflow.db") in names["mlflow_store"]["detail"]  # conf/local is read
    assert names["cuda"]["required"] is False


def test_unreachable_storage_exits_1_without_leaking_the_password(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    (project / "conf" / "local" / "parameters.yml").write_text(
        "hpo:\n  study:\n    storage: postgresql://optuna:s3cretPassw0rd@127.0.0.1:9/optuna\n"
    )
    (project / "conf" / "local" / "mlflow.yml").write_text(
        "server:\n  mlflow_tracking_uri: http://user:s3cretPassw0rd@127.0.0.1:9\n"
    )
    run = _run(project, "--json")
    assert run.returncode == 1, run.stdout + run.stderr
    result = json.loads(run.stdout)
    states = {c["name"]: c["ok"] for c in result["checks"]}
    assert states["optuna_storage"] is False and states["mlflow_store"] is False
    assert states["python"] is True
    assert "s3cretPassw0rd" not in run.stdout + run.stderr


@pytest.mark.slow
def test_a_tracking_url_with_credentials_is_checked_with_them(
    tmp_path: Path, mlflow_server: MlflowServer
) -> None:
    project = copy_project(tmp_path / "project")
    url = mlflow_server.url.replace("http://", "http://user:s3cretPassw0rd@")
    (project / "conf" / "local" / "mlflow.yml").write_text(
        f"server:\n  mlflow_tracking_uri: {url}\n"
    )
    run = _run(project, "--json")
    result = json.loads(run.stdout)
    store = {c["name"]: c for c in result["checks"]}["mlflow_store"]
    assert store["ok"] is True, store  # it used to fail with "Name or service not known"
    assert "answered 200" in store["detail"]
    assert "s3cretPassw0rd" not in run.stdout + run.stderr


BERT_BASE_CONFIG = {  # bert-base-uncased's config.json as the hub serves it
    "architectures": ["BertForMaskedLM"],
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 0,
    "type_vocab_size": 2,
    "vocab_size": 30522,
}


def _hub_cache_with_config(home: Path, repo_id: str, config: dict[str, object]) -> None:
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<sha>/}."""
    commit = "86b5e0934494bd15c9632b12f734a8a67f723594"
    repo = home / "hub" / ("models--" + repo_id.replace("/", "--"))
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text(json.dumps(config))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def _disk_with_encoder(tmp_path: Path, encoder: str, **env: str) -> dict[str, object]:
    project = copy_project(tmp_path / "project")
    (project / "conf" / "local" / "parameters.yml").write_text(
        f"hpo:\n  base:\n    model:\n      encoder: {encoder}\n"
    )
    run = _run(project, "--json", extra_env=env)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    return {c["name"]: c for c in result["checks"]}["disk"]


def test_a_cached_hub_encoder_is_sized_from_its_own_config(tmp_path: Path) -> None:
    home = tmp_path / "hf"
    _hub_cache_with_config(home, "bert-base-uncased", BERT_BASE_CONFIG)
    disk = _disk_with_encoder(
        tmp_path, "bert-base-uncased", HF_HOME=str(home), HF_HUB_CACHE="", HF_HUB_OFFLINE="1"
    )
    assert "109.5M params of bert-base-uncased" in disk["detail"], disk  # BertModel: 109,482,240
    assert "22.7M" not in disk["detail"]  # MiniLM's size, which it reported before


def test_an_uncached_hub_encoder_offline_has_an_unknown_size(tmp_path: Path) -> None:
    disk = _disk_with_encoder(
        tmp_path, "org/not-cached", HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1"
    )
    assert disk["status"] == "warn" and disk["required"] is False, disk
    assert "unknown: org/not-cached is not in the HF cache" in disk["detail"]
    assert "hf download org/not-cached config.json" in disk["detail"]
    assert "M params" not in disk["detail"]
