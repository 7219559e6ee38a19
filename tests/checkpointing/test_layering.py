"""The checkpoint core's shape: a small face, private insides, no cycles, no kedro or mlflow.

These check the contracts of pyproject.toml's ``[tool.importlinter]`` on the real import graph
(grimp, which import-linter runs on), so a change that breaks one fails here too, with the
offending import named.
"""

from __future__ import annotations

import ast
import itertools
import tomllib
from pathlib import Path

import grimp
import pytest

import mental_health_hpo
import mental_health_hpo.checkpointing as core

ROOT = Path(mental_health_hpo.__file__).parents[2]
PACKAGE = Path(core.__file__).parent
FORBIDDEN = {"kedro", "kedro_datasets", "mlflow", "kedro_mlflow"}
#: Public by job, beside the face: publication of the best checkpoint, the cleanup and rollback
#: commands.
PUBLIC_MODULES = {"__init__", "publish", "cleanup", "rollback"}
# 59 before the fold; what a trial, a reader and a study need (see __init__). Where a study
# lives (Storage, storage_at, checkpoint_store: a folder or a bucket) is workspace's face.
MAX_FACE = 16
MAX_LINES = 400


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("mental_health_hpo", include_external_packages=True)


def test_core_never_imports_kedro_or_mlflow() -> None:
    offenders = []
    for source in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{source.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_the_face_is_small_and_every_name_resolves() -> None:
    assert len(core.__all__) <= MAX_FACE, sorted(core.__all__)
    assert len(set(core.__all__)) == len(core.__all__)
    for name in core.__all__:
        assert getattr(core, name) is not None, name
    # What a trial and a study need from the core is on the face.
    for name in ("CheckpointManager", "CheckpointOptions", "RetentionPolicy", "LoadedCheckpoint",
                 "CheckpointError", "StudyRetention", "RunCheckpoints"):  # fmt: skip
        assert name in core.__all__


def test_every_other_module_of_the_core_is_private() -> None:
    public = {p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_")}
    assert public | {"__init__"} == PUBLIC_MODULES


def test_nothing_outside_the_core_imports_its_private_modules(graph: grimp.ImportGraph) -> None:
    private = [m for m in graph.find_children(core.__name__) if m.rsplit(".", 1)[1].startswith("_")]
    assert private, "the core has private modules"
    offenders = sorted(
        f"{importer} -> {module}"
        for module in private
        for importer in graph.find_modules_that_directly_import(module)
        if not importer.startswith(core.__name__ + ".") and importer != core.__name__
    )
    assert offenders == []


def test_the_private_modules_contract_is_in_ci() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
    private = [c for c in contracts if c["type"] == "private_modules"]
    assert private and "mental_health_hpo" in private[0]["packages_with_private_modules"]
    acyclic = [c for c in contracts if c["type"] == "acyclic_siblings"]
    assert {"mental_health_hpo.checkpointing", "mental_health_hpo.workspace"} <= set(
        acyclic[0]["ancestors"]
    )


def test_no_module_of_the_project_is_over_400_lines() -> None:
    sizes = {
        str(p.relative_to(PACKAGE.parent)): len(p.read_text().splitlines())
        for p in PACKAGE.parent.rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_no_import_cycle_among_the_core_modules(graph: grimp.ImportGraph) -> None:
    modules = sorted(graph.find_children(core.__name__))
    cycles = [
        (a, b)
        for a, b in itertools.combinations(modules, 2)
        if graph.chain_exists(a, b) and graph.chain_exists(b, a)
    ]
    assert cycles == []


def test_workspace_sits_below_the_core_tracking_and_hpo(graph: grimp.ImportGraph) -> None:
    upstream = [f"mental_health_hpo.{name}" for name in ("checkpointing", "tracking", "hpo")]
    for package in upstream:
        assert graph.find_shortest_chains("mental_health_hpo.workspace", package) == set()
        assert graph.find_shortest_chains(package, "mental_health_hpo.workspace"), package
