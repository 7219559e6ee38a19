"""scripts/check_readme_commands.py and scripts/check_test_count.py on real files and processes."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


readme = _load("check_readme_commands")
test_count = _load("check_test_count")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_readme_commands_and_their_servers() -> None:
    commands = readme.readme_commands((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
    lines = [c.line for c in commands]
    assert lines[0] == "make setup && make hpo && make evaluate"
    assert "make setup && make test" in lines
    servers = {c.line.split("#")[0].strip(): c.url for c in commands if c.is_server}
    assert servers == {
        "make viz": "http://127.0.0.1:4141",
        "make mlflow-ui": "http://127.0.0.1:5000",
        "make optuna-dashboard": "http://127.0.0.1:8080",
    }
    # every command is runnable from a fresh clone: nothing relies on an activated venv
    assert not [line for line in lines if line.startswith(("kedro ", "python ", "pytest"))]


def test_blocks_other_than_bash_and_continuations() -> None:
    text = "```python\nprint(1)\n```\n```bash\n# a comment\nmake a \\\n  --flag\nmake b\n```\n"
    assert [c.line for c in readme.readme_commands(text)] == ["make a --flag", "make b"]


def test_a_server_and_its_child_are_stopped(tmp_path: Path) -> None:
    port = _free_port()
    # the server is a child of the command's shell, as kedro viz's is of kedro
    line = f"{sys.executable} -m http.server {port} --bind 127.0.0.1 & wait  # on http://127.0.0.1:{port}"
    (command,) = readme.readme_commands(f"```bash\n{line}\n```\n")
    problem = readme.run_server(command, tmp_path, {}, tmp_path / "server.log", timeout_s=60)
    assert problem == ""
    assert not readme.port_open(command.url)


def test_a_failing_command_is_reported(tmp_path: Path) -> None:
    (command,) = readme.readme_commands("```bash\nexit 3\n```\n")
    problem = readme.run_command(command, tmp_path, {}, tmp_path / "c.log", timeout_s=30)
    assert problem.startswith("exited with 3")


@pytest.mark.parametrize(("minimum", "expected"), [(3, 0), (4, 1)])
def test_the_test_count_guard(tmp_path: Path, minimum: int, expected: int) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest" tests="5" skipped="2"></testsuite></testsuites>'
    )
    assert test_count.main([str(junit), "--min", str(minimum)]) == expected


def test_the_test_count_guard_without_a_report(tmp_path: Path) -> None:
    assert test_count.main([str(tmp_path / "missing.xml"), "--min", "1"]) == 1
