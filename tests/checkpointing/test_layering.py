"""The checkpoint core is framework-free: no kedro, no mlflow, anywhere in the package."""

from __future__ import annotations

import ast
from pathlib import Path

import mental_health_hpo.checkpointing as core

FORBIDDEN = {"kedro", "kedro_datasets", "mlflow", "kedro_mlflow"}


def test_core_never_imports_kedro_or_mlflow() -> None:
    package = Path(core.__file__).parent
    offenders = []
    for source in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{source.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
    assert len(list(package.glob("*.py"))) >= 12


def test_public_api_is_exported() -> None:
    for name in (
        "CheckpointManager",
        "RetentionPolicy",
        "architecture_signature",
        "estimate_checkpoint_bytes",
        "find_best_checkpoints",
        "validate_metric_name",
        "load_policy",
        "InsufficientDiskSpaceError",
    ):
        assert name in core.__all__ and hasattr(core, name)
