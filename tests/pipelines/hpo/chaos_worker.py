"""Fork server for the chaos test: imports the project once, then forks one hpo run per request.

Each run is a real process, forked so that the import of torch, transformers, mlflow and kedro
(10-20 s on a loaded 2-core machine) is paid once for the whole test, not once per restart. A
child does what ``kedro run --pipelines hpo --only-missing-outputs`` (``make hpo``) does: a
KedroSession in its project folder, with kedro-mlflow's hooks, in its own environment, so that
the crash points of ``mental_health_hpo.crash_points`` make it SIGKILL itself at the named
instant.

Protocol: one JSON object per line on stdin, ``{"project", "params", "env", "log", "status"}``;
the server answers ``pid <child's pid>``. The child writes its exit code to ``status`` when it
ends by itself (a killed child writes nothing). ``quit`` or the end of stdin stops the server.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

# The expensive imports, once, before any fork (no thread is started by importing them).
import mlflow  # noqa: F401
import torch  # noqa: F401
import transformers  # noqa: F401
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

import mental_health_hpo.pipelines.hpo.nodes  # noqa: F401


def child(request: dict[str, Any]) -> None:
    """Run the hpo pipeline of one project; never returns."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # subprocesses of the run must be waitable
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.environ.update(request["env"])
    project = Path(request["project"])
    os.chdir(project)
    code = 1
    try:
        bootstrap_project(project)
        with KedroSession.create(project_path=project, runtime_params=request["params"]) as run:
            # As `make hpo`: data_ingest only where its outputs are missing or out of date.
            run.run(pipeline_names=["hpo"], only_missing_outputs=True)
        code = 0
    except BaseException:
        traceback.print_exc()
    try:
        atexit._run_exitfuncs()  # what a normal interpreter exit runs (checkpoint flushes...)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        Path(request["status"]).write_text(str(code))
        os._exit(code)


def main() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps finished and killed children
    for line in sys.stdin:
        if not line.strip() or line.strip() == "quit":
            break
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            try:
                child(request)
            finally:
                os._exit(1)
        print(f"pid {pid}", flush=True)


if __name__ == "__main__":
    main()
