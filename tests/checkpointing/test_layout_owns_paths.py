"""workspace/layout.py is the only module that spells study, trial and checkpoint paths.

Every other module asks it (``StudyLayout``, ``TrialLayout``, ``PublishedLayout``, ``trial_id``,
``checkpoint_id``...). The check reads the source (code, not docstrings): a string that is one of
the layout's file names, or an f-string that glues a number or name onto ``trial_``, ``study_``
or ``.tmp-``, is a path spelt outside the layout.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mental_health_hpo
from mental_health_hpo.workspace import layout

PACKAGE = Path(mental_health_hpo.__file__).parent
NAMES = {
    value
    for name, value in vars(layout).items()
    if name.isupper() and isinstance(value, str) and ("." in value or value.endswith("_"))
} | {"trial_*", "study_*"}
PREFIXES = (layout.TRIAL_PREFIX, layout.STUDY_PREFIX, layout.TEMP_PREFIX)
# The same name by coincidence: a Hugging Face encoder folder's weights, not a checkpoint's.
ALLOWED = {("encoder_size.py", "model.safetensors")}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            found.add(id(body[0].value))
    return found


def _spelt_paths(source: Path) -> list[str]:
    tree = ast.parse(source.read_text(encoding="utf-8"))
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            for part in node.values[:-1]:  # a literal part with a formatted value after it
                text = part.value if isinstance(part, ast.Constant) else None
                if isinstance(text, str) and text.endswith(PREFIXES):
                    found.append(f"{source.name}:{node.lineno}: f-string {text!r}...")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in docstrings or (source.name, node.value) in ALLOWED:
                continue
            if node.value in NAMES or node.value in PREFIXES:
                found.append(f"{source.name}:{node.lineno}: {node.value!r}")
    return found


def test_no_module_but_the_layout_spells_a_study_path() -> None:
    assert {"manifest.json", "trial.json", "published.json", "trial_*"} <= NAMES
    sources = [p for p in sorted(PACKAGE.rglob("*.py")) if p != Path(layout.__file__)]
    assert len(sources) > 50
    assert [hit for source in sources for hit in _spelt_paths(source)] == []
