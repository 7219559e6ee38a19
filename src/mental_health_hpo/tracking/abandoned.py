"""End the MLflow runs a killed process left RUNNING: on the next start, with a reason.

Why: after SIGKILLs, Ctrl-C or a crash between ``study.tell`` and the run's close, parent and
trial runs stayed RUNNING forever (17 of 19 parent runs in one reproduction), and nothing told a
dead run from a live one. Every run the tracker opens carries ``study_id`` and an owner tag
(``host:pid:process-start``, see :func:`owner_id`), and the study runner claims its parent run
with ``TrialTracker.claim``. A worker's kedro-mlflow session run is created with both tags
(:func:`create_owned_run`, called by ``hooks.SessionRunHooks`` before kedro-mlflow starts it):
tagging it later, once the worker held its lease, left every worker killed during start-up with
a run nobody recognised, RUNNING forever. So at start the study can decide for each RUNNING run
of its own:

- in ``live_run_ids`` (the parent this process just opened, say): left alone;
- owned by a process on this host: ended when that process is gone (pid not running, or running
  with another start time, i.e. a reused pid), or when it is this very process (a run of an
  earlier session in the same interpreter that was not closed);
- owned by another host (several machines on one study): ended only when it showed no sign of
  life (heartbeat tag, else start time) for ``stale_after_s``;
- with no owner tag (opened before owner tags existed, or a parent killed before it was
  claimed): ended.

Ended runs get status KILLED (or what ``status`` says) and an ``end_reason`` tag.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow.entities import RunStatus, ViewType
from mlflow.tracking import MlflowClient
from mlflow.tracking.context import registry as run_context

from mental_health_hpo.crash_points import crash_point

logger = logging.getLogger(__name__)

STUDY_TAG = "study_id"
OWNER_TAG = "mental_health_hpo.owner"
HEARTBEAT_TAG = "mental_health_hpo.heartbeat_ms"
END_REASON_TAG = "end_reason"
STALE_AFTER_S = 3600.0


def _start_ticks(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    return stat.rsplit(")", 1)[1].split()[19]


def owner_id() -> str:
    """``host:pid:start`` of this process, stored in :data:`OWNER_TAG` on every run it opens."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid()) or 0}"


def create_owned_run(
    client: MlflowClient, experiment_id: str, run_name: str, study_name: str
) -> str:
    """Create a RUNNING run of ``study_name`` owned by this process, tagged in the same call.

    Why one call: the run never exists, not even for a moment, without the tags that let
    :func:`end_abandoned_runs` end it once this process is gone. The other tags are the ones
    ``mlflow.start_run`` would add (user, source, git commit: MLflow's run context providers).
    """
    tags = {"mlflow.runName": run_name, STUDY_TAG: study_name, OWNER_TAG: owner_id()}
    run = client.create_run(experiment_id, tags=run_context.resolve_tags(tags), run_name=run_name)
    crash_point("session_run_created")
    return str(run.info.run_id)


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    ticks = _start_ticks(pid)
    return ticks is None or start in ("0", ticks)


def _why_abandoned(run: Any, now_ms: int, stale_after_s: float) -> str | None:
    """Why ``run`` has no live owner, or None when it may still be running somewhere."""
    owner = run.data.tags.get(OWNER_TAG)
    if not owner:
        return "no owner recorded (opened before owner tags, or killed before it was claimed)"
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host == socket.gethostname():
        pid = int(pid_text) if pid_text.isdigit() else -1
        if pid == os.getpid():
            return f"left open by an earlier session of this process ({owner})"
        if pid < 0 or not _alive(pid, start or "0"):
            return f"its process {owner} is gone"
        return None
    seen = run.data.tags.get(HEARTBEAT_TAG) or run.info.start_time or 0
    idle_s = (now_ms - int(seen)) / 1000
    if idle_s > stale_after_s:
        return f"no sign of life from {owner} for {idle_s:.0f} s"
    return None


def end_abandoned_runs(
    client: MlflowClient,
    experiment_id: str,
    study_name: str,
    live_run_ids: Iterable[str],
    *,
    status: str = "KILLED",
    stale_after_s: float = STALE_AFTER_S,
) -> list[str]:
    """End every RUNNING run of ``study_name`` whose process is gone; returns their ids.

    Candidates are the experiment's RUNNING runs tagged ``study_id = study_name`` and the
    RUNNING parents of those runs. Call it at study start, after opening (and claiming) the new
    parent run, with that parent and any run this process keeps open in ``live_run_ids``.
    """
    live = set(live_run_ids)
    running = RunStatus.to_string(RunStatus.RUNNING)
    tagged = client.search_runs(
        [experiment_id],
        filter_string=f"tags.{STUDY_TAG} = '{study_name}' and attributes.status = '{running}'",
        run_view_type=ViewType.ACTIVE_ONLY,
        max_results=5000,
    )
    candidates = {run.info.run_id: run for run in tagged}
    for run in tagged:
        parent_id = run.data.tags.get("mlflow.parentRunId")
        if parent_id and parent_id not in candidates:
            parent = client.get_run(parent_id)
            if parent.info.status == running:
                candidates[parent_id] = parent
    now_ms = int(time.time() * 1000)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    ended = []
    for run_id, run in sorted(candidates.items()):
        if run_id in live:
            continue
        why = _why_abandoned(run, now_ms, stale_after_s)
        if why is None:
            continue
        reason = f"abandoned: {why}; ended as {status} when study {study_name} restarted {stamp}"
        client.set_tag(run_id, END_REASON_TAG, reason)
        client.set_terminated(run_id, status=status)
        ended.append(run_id)
        logger.info("Ended MLflow run %s (%s): %s", run_id, run.info.run_name, reason)
    return ended
