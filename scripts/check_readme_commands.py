"""Run every command of README.md's ```bash blocks, verbatim, in a fresh clone of the repository.

A command is run with ``bash -c`` from the clone's root, in README order, so later commands see
what earlier ones wrote (``make hpo`` before ``make viz``). A command whose comment says
``on http://HOST:PORT`` is a server (``make viz  # the pipelines, on http://127.0.0.1:4141``): it
is started in its own process group, must answer HTTP 200 on that address, and is then stopped
with its whole group (kedro viz serves from a child process), after which the port must be free.
Any other command must exit 0. Logs of each command go to ``<workdir>/logs/``.

    python3 scripts/check_readme_commands.py                      # a clone of HEAD, all commands
    python3 scripts/check_readme_commands.py --skip 'make test'   # CI runs the suite on its own
    python3 scripts/check_readme_commands.py --list               # only print the commands

Stdlib only: it runs before ``make setup`` has created the virtualenv. ``--venv PATH`` reuses an
installed virtualenv instead of ``make setup`` installing one (a development shortcut: the clone's
``src`` is put first on PYTHONPATH and its ``pyproject.toml`` is dated before the virtualenv's
``.installed`` stamp, so make does not reinstall into it).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\s*$")
SERVER_URL = re.compile(r"#.*\bon (http://[\w.\-]+:\d+/?\S*)")
QUIET_ENV = {
    "KEDRO_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
}


@dataclass(frozen=True)
class Command:
    """One README command: its line, and the address it serves when it is a server."""

    line: str
    url: str | None = None

    @property
    def is_server(self) -> bool:
        return self.url is not None


def readme_commands(text: str) -> list[Command]:
    """The commands of every ```bash block (continuation lines joined), in order."""
    commands: list[Command] = []
    language: str | None = None
    pending = ""
    for raw in text.splitlines():
        fence = FENCE.match(raw.strip())
        if fence:
            language = None if language is not None else fence.group(1)
            continue
        if language not in ("bash", "sh", "shell") or not raw.strip():
            continue
        if raw.strip().startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.strip()[:-1].strip() + " "
            continue
        line = (pending + raw.strip()).strip()
        pending = ""
        match = SERVER_URL.search(line)
        commands.append(Command(line=line, url=match.group(1) if match else None))
    return commands


def fresh_clone(workdir: Path, working_tree: bool) -> Path:
    """A clone of HEAD (what a new user gets), or a copy of the working tree's unignored files."""
    target = workdir / "clone"
    if not working_tree:
        subprocess.run(
            ["git", "clone", "--quiet", "--no-hardlinks", str(REPO_ROOT), str(target)], check=True
        )
        return target
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, (item.decode() for item in listed)):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def reuse_venv(clone: Path, venv: Path, env: dict[str, str]) -> None:
    """Link an installed virtualenv into the clone without make reinstalling into it."""
    stamp = venv / ".installed"
    if not stamp.exists():
        raise SystemExit(f"error: {stamp} not found: --venv needs a virtualenv `make setup` made")
    (clone / ".venv").symlink_to(venv.resolve(), target_is_directory=True)
    before = stamp.stat().st_mtime - 60
    for name in ("pyproject.toml", "constraints.txt"):
        if (clone / name).exists():
            os.utime(clone / name, (before, before))
    env["PYTHONPATH"] = str(clone / "src")


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return None


def port_open(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((parts.hostname or "127.0.0.1", parts.port or 80)) == 0


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the command's whole process group, SIGKILL after 15 s."""
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            # children of the group may outlive the leader: make sure they are gone too
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def run_server(
    command: Command, cwd: Path, env: dict[str, str], log: Path, timeout_s: float
) -> str:
    """'' when the server answered 200 and was stopped cleanly, else what went wrong."""
    assert command.url is not None
    if port_open(command.url):
        return f"{command.url} is already in use before the command started"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", command.line],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout_s
            status = None
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    return f"exited with {process.returncode} before serving (see {log})"
                status = http_status(command.url)
                if status == 200:
                    break
                time.sleep(1)
            else:
                return f"no HTTP 200 from {command.url} within {timeout_s:.0f} s (last: {status})"
        finally:
            stop_group(process)
    for _ in range(20):
        if not port_open(command.url):
            return ""
        time.sleep(0.5)
    return f"{command.url} still answers after the command's process group was stopped"


def run_command(
    command: Command, cwd: Path, env: dict[str, str], log: Path, timeout_s: float
) -> str:
    """'' when the command exited 0, else what went wrong."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", command.line],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stop_group(process)
            return f"still running after {timeout_s:.0f} s (see {log})"
    return "" if code == 0 else f"exited with {code} (see {log})"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=REPO_ROOT / "README.md")
    parser.add_argument("--workdir", type=Path, help="where to clone (default: a temp folder)")
    parser.add_argument(
        "--working-tree", action="store_true", help="copy the working tree instead of HEAD"
    )
    parser.add_argument("--venv", type=Path, help="reuse this installed virtualenv")
    parser.add_argument(
        "--skip", action="append", default=[], help="regex: commands to leave out (repeatable)"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per command")
    parser.add_argument("--server-timeout", type=float, default=180, help="seconds to serve")
    parser.add_argument("--list", action="store_true", help="print the commands and exit")
    parser.add_argument("--keep", action="store_true", help="keep the clone afterwards")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    commands = readme_commands(args.readme.read_text(encoding="utf-8"))
    if not commands:
        print(f"error: no ```bash command in {args.readme}", file=sys.stderr)
        return 1
    skipped = [c for c in commands if any(re.search(p, c.line) for p in args.skip)]
    if args.list:
        for command in commands:
            kind = "skip" if command in skipped else ("serve" if command.is_server else "run")
            print(f"{kind:<6}{command.line}")
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="readme-commands-"))
    workdir.mkdir(parents=True, exist_ok=True)
    clone = fresh_clone(workdir, args.working_tree)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    env = {**os.environ, **QUIET_ENV}
    if args.venv:
        reuse_venv(clone, args.venv, env)
    failures: list[tuple[str, str]] = []
    for index, command in enumerate(commands):
        if command in skipped:
            print(f"SKIP  {command.line}", flush=True)
            continue
        log = logs / f"{index:02d}.log"
        started = time.monotonic()
        if command.is_server:
            problem = run_server(command, clone, env, log, args.server_timeout)
        else:
            problem = run_command(command, clone, env, log, args.timeout)
        elapsed = time.monotonic() - started
        verdict = "ok" if not problem else "FAIL"
        print(f"{verdict:<5} {elapsed:7.1f} s  {command.line}", flush=True)
        if problem:
            print(f"      {problem}", flush=True)
            failures.append((command.line, problem))
    if not args.keep and not failures:
        shutil.rmtree(workdir, ignore_errors=True)
    if failures:
        print(f"{len(failures)} README command(s) failed; clone and logs kept in {workdir}")
        return 1
    print(f"all {len(commands) - len(skipped)} README commands work ({len(skipped)} skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
