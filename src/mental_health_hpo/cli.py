"""Project commands: Kedro's own ``kedro run``, plus a useful message on Ctrl-C.

Kedro loads ``<package>.cli`` after its plugins and lets its commands override theirs. ``run``
here is Kedro's ``run`` command with the same options and callback; only a KeyboardInterrupt is
handled: the message says what was saved and how to continue (click alone prints ``Aborted!``),
the active MLflow run is closed as KILLED rather than left RUNNING, and the exit code is 130.
Kedro's ``on_pipeline_error`` hook cannot do this: the session calls it for ``Exception`` only,
and KeyboardInterrupt is a ``BaseException``.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run

from mental_health_hpo.interrupt import configured_experiments_dir, interrupted_summary

#: The exit status of a process ended by SIGINT, as shells report it.
INTERRUPTED_EXIT = 130


def _close_mlflow_run() -> None:
    try:
        import mlflow

        while mlflow.active_run() is not None:
            mlflow.end_run(status="KILLED")
    except Exception as error:  # the message matters more than the run's status
        click.echo(f"(could not close the MLflow run: {error})", err=True)


def _run(**kwargs: Any) -> Any:
    started = time.time()
    try:
        return kedro_run.callback(**kwargs)  # type: ignore[misc]
    except KeyboardInterrupt:
        _close_mlflow_run()
        command = " ".join(shlex.quote(arg) for arg in sys.argv)
        experiments = configured_experiments_dir(Path("experiments"))
        click.echo("\n" + interrupted_summary(experiments, started, command), err=True)
        sys.exit(INTERRUPTED_EXIT)


run = click.Command(
    name="run",
    params=list(kedro_run.params),
    callback=_run,
    help=kedro_run.help,
    short_help=kedro_run.short_help,
)


@click.group(name="mental_health_hpo")
def cli() -> None:
    """Commands of the mental_health_hpo project."""


cli.add_command(run)
