"""Every path and file name docs/operations.md gives exists: in the repository, in the installed
packages, or among the paths the code writes into a study folder.

Why: the backup command once copied ``experiments/study_*/mlflow_buffer.jsonl`` while the code
wrote ``mlflow_buffers/<worker>.jsonl``, so it copied nothing, silently. Operations docs are read
in an incident, when a wrong name costs the most.
"""

from __future__ import annotations

import re
import sysconfig
from pathlib import Path

import pytest

from mental_health_hpo.ops.logs import study_log_path, trial_log_path
from mental_health_hpo.tracking.mlflow_tracker import _pending_path
from mental_health_hpo.workspace.layout import (
    PREVIOUS_MANIFEST_NAME,
    RECORD_NAME,
    STATE_FILE,
    WEIGHTS_FILE,
    StudyLayout,
    checkpoint_id,
)

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "mental_health_hpo"
OPERATIONS = REPO / "docs" / "operations.md"

#: How the shell variables of the doc's procedures are set there (RR-005).
SHELL_VARIABLES = {
    "$STUDY": "experiments/study_redsm5_minilm",
    "$TRIAL": "experiments/study_redsm5_minilm/trial_0003",
}

#: Names the user or a third party chooses (examples in commands), not the project's layout:
#: each is checked by nothing here, so keep this list short and say why.
NOT_THE_PROJECTS = {
    "/",  # part of `/path/to/other.yml`-style prose and `2>/dev/null`
    "/tmp/mlflow-buffers.tgz",  # where the backup command copies to
    "<url>/health",  # MLflow's endpoint on the user's server
    "sentence-transformers/all-MiniLM-L6-v2",  # a hub id, not a path
    "mlflow.db",  # the user's MLflow sqlite store (conf/base/mlflow.yml names it)
    "mlflow.recovered.db",  # made by the repair command itself
    "backups/mlflow-DATE.db",  # the user's backup
    "rolled_back/",  # made by the rollback procedure itself
    "$TRIAL/manifest.before-rollback.json",  # the rollback procedure's own backup
    "config.json",  # a Hugging Face encoder's file
    "conf/local",  # gitignored: the user's own settings
    "conf/local/credentials.yml",
}

_PATHY = re.compile(r"^[\w.$<>*{}/~-]+$")
_FILE_EXTENSION = re.compile(r"\.(json|jsonl|yml|yaml|py|db|lock|txt|md|pt|safetensors|toml)$")


def _mentioned_paths(text: str) -> set[str]:
    """Backticked names, and the path-like words of fenced code blocks."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    words = [w for code in re.findall(r"`([^`\n]+)`", prose) for w in code.split()]
    words += [w for block in blocks for w in re.split(r"[\s'\"=(),;|]+", block)]
    return {
        w
        for w in words
        if _PATHY.match(w)
        and ("/" in w or _FILE_EXTENSION.search(w))
        and not w.startswith(("http", ".venv/"))
    }


def _written_by_the_code(root: Path) -> list[str]:
    """Every file and folder a study writes, relative to the project root (a sample study)."""
    study = StudyLayout.of(root / "experiments", "redsm5_minilm")
    trial = study.trial(3)
    checkpoint = trial.checkpoints / checkpoint_id(1, 54)
    buffer = study.mlflow_buffer("worker-1")
    paths = [
        study.path, study.logs, study_log_path(study.path), study.result, buffer,
        _pending_path(buffer), study.pressure_marker,
        trial.path, trial.record, trial.logs, trial_log_path(trial.logs), trial.work_log,
        trial.checkpoints, trial.manifest, trial.checkpoints / PREVIOUS_MANIFEST_NAME,
        checkpoint, checkpoint / WEIGHTS_FILE, checkpoint / STATE_FILE, checkpoint / RECORD_NAME,
    ]  # fmt: skip
    return sorted(str(p.relative_to(root)) for p in paths)


def _as_pattern(documented: str) -> re.Pattern[str]:
    """``study_<id>``, ``study_*`` and ``trial_<nnnn>`` stand for any one path segment part."""
    parts = re.split(r"(<[^>]+>|\*|DATE)", documented.rstrip("/"))
    body = "".join("[^/]+" if p in ("*", "DATE") or p.startswith("<") else re.escape(p)
                   for p in parts)  # fmt: skip
    return re.compile(f"(^|.*/){body}$")


def _exists_in_repo_or_packages(documented: str) -> bool:
    name = documented.rstrip("/")
    if "<" in name or "*" in name:
        return False
    site = Path(sysconfig.get_paths()["purelib"])
    return any((base / name).exists() for base in (REPO, PACKAGE, site)) or any(
        p.name == name for p in REPO.glob(f"conf/**/{name}")
    )


def _check(documented: str, written: list[str]) -> str | None:
    """None when ``documented`` names something that exists; else why it does not."""
    if documented in NOT_THE_PROJECTS:
        return None
    for variable, value in SHELL_VARIABLES.items():
        documented = documented.replace(variable, value)
    if _exists_in_repo_or_packages(documented):
        return None
    pattern = _as_pattern(documented)
    produced = written + sorted({str(Path(p).parent) for p in written})
    if any(pattern.match(p) for p in produced):
        return None
    return f"{documented!r} is neither in the repository nor among what a study writes"


def test_every_path_in_operations_md_exists(tmp_path: Path) -> None:
    written = _written_by_the_code(tmp_path)
    mentioned = _mentioned_paths(OPERATIONS.read_text(encoding="utf-8"))
    assert len(mentioned) > 20  # the scan sees the doc's paths, not nothing
    problems = [p for p in (_check(m, written) for m in sorted(mentioned)) if p]
    assert problems == [], "docs/operations.md: " + "; ".join(problems)


@pytest.mark.parametrize(
    "stale",
    [
        "experiments/study_*/mlflow_buffer.jsonl",  # the backup that copied nothing
        "experiments/study_<id>/trial_<nnnn>/trial.lock",  # a lock the runner no longer takes
        "conf/base/retention_policies/",  # policies load from the package
        "src/mental_health_hpo/pipelines/hpo/wiring.py",  # moved to hpo/setup.py
    ],
)
def test_the_check_catches_names_that_went_stale(tmp_path: Path, stale: str) -> None:
    assert _check(stale, _written_by_the_code(tmp_path)) is not None


def test_the_check_accepts_what_the_code_writes(tmp_path: Path) -> None:
    written = _written_by_the_code(tmp_path)
    for good in (
        "experiments/study_*/mlflow_buffers/*.jsonl",
        "experiments/study_<id>/mlflow_buffers/mlflow_pending_runs.json",
        "$TRIAL/checkpoints/manifest.json",
        "checkpoints/ckpt-e0001-s000054/model.safetensors",
        "trial.json",
    ):
        assert _check(good, written) is None, good
