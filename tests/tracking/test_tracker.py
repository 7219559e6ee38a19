"""The trial tracker on real stores: SQLite, and a real ``mlflow server`` stopped and started.

Outage tests keep MLflow's DEFAULT HTTP retries (7 retries with backoff factor 2, about four
minutes per call against a stopped server): the tracker's circuit breaker alone must bound how
long a call can stall training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient
from servers import MlflowServer

from mental_health_hpo.ops.logs import log_context
from mental_health_hpo.tracking import MetricsBuffer, TrialTracker
from mental_health_hpo.tracking.breaker import BreakerOptions, CircuitBreaker
from mental_health_hpo.tracking.pending import is_pending

MLFLOW_RETRY_SETTINGS = (
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
)
CALL_TIMEOUT_S = 5.0
# What one tracker call may take in an outage: the breaker's timeout plus slack for a loaded
# machine (the unbounded call takes minutes).
STALL_BOUND_S = CALL_TIMEOUT_S + 5.0


@dataclass
class Record:
    step: int
    metrics: dict[str, float]
    timestamp_ms: int


RECORDS = [
    Record(0, {"val_f1_macro": 0.5, "train_loss": 1.0}, 1_700_000_000_000),
    Record(1, {"val_f1_macro": 0.6, "train_loss": 0.8}, 1_700_000_060_000),
]


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_replaying_the_same_journal_logs_each_step_once(tmp_path: Path) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("e")
    tracker = TrialTracker(client, experiment, MetricsBuffer(tmp_path / "buffer.jsonl"))
    run_id = tracker.start(None, "trial_0000", {"model": {"loss": "bce"}}, {"study_id": "s"})
    assert run_id is not None
    assert tracker.publish(run_id, RECORDS[:1])
    assert tracker.publish(run_id, RECORDS)  # a resumed trial replays the whole journal
    assert _history(client, run_id, "val_f1_macro") == [(0, 0.5), (1, 0.6)]
    # resuming reuses the run and never changes a logged param
    again = tracker.start(run_id, "trial_0000", {"model": {"loss": "focal"}, "extra": 1}, {})
    params = client.get_run(run_id).data.params
    assert again == run_id and params["model.loss"] == "bce" and params["extra"] == "1"


@pytest.fixture
def default_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's own retry settings, whatever the environment of the suite says."""
    for name in MLFLOW_RETRY_SETTINGS:
        monkeypatch.delenv(name, raising=False)


def _breaker() -> CircuitBreaker:
    options = BreakerOptions(call_timeout_s=CALL_TIMEOUT_S, cooldown_s=1.0, max_cooldown_s=2.0)
    return CircuitBreaker(options)


def test_unreachable_store_buffers_to_disk_and_never_raises(
    tmp_path: Path, default_retries: None
) -> None:
    client = MlflowClient("http://127.0.0.1:9")  # nothing listens on the discard port
    buffer = MetricsBuffer(tmp_path / "buffer.jsonl")
    tracker = TrialTracker(client, "0", buffer, breaker=_breaker())
    started = time.monotonic()
    # As in a study, the call is made inside its trial's context: the call it leaves behind,
    # retrying for minutes, logs as this trial, never into a later test's trial log.
    with log_context(study_id="unreachable", trial_id="trial_0000_unreachable"):
        assert tracker.publish("run-1", RECORDS) is False
    assert time.monotonic() - started < STALL_BOUND_S  # not MLflow's four minutes of retries
    assert [(p.key, p.step) for p in buffer.pending()][:2] == [
        ("val_f1_macro", 0),
        ("train_loss", 0),
    ]
    assert len(buffer.pending()) == 4


def test_buffer_warns_past_its_size_limit(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from mental_health_hpo.tracking import MetricPoint

    buffer = MetricsBuffer(tmp_path / "b.jsonl", warn_bytes=100)
    buffer.append([MetricPoint("r", "k", 1.0, i, 0) for i in range(5)])
    assert "Metrics buffer" in caplog.text


def _timed(action, *args):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = action(*args)
    return result, time.monotonic() - started


def _run_status(client: MlflowClient, run_id: str) -> str:
    return str(client.get_run(run_id).info.status)


@pytest.mark.slow
def test_an_outage_loses_no_run_no_metric_and_no_close(
    tmp_path: Path, mlflow_server: MlflowServer, default_retries: None
) -> None:
    """Stop the server mid-study, start it again, check that everything arrived exactly once.

    Trial 0 runs before the outage; its epoch 1 and its close fall in the outage. Trial 1
    starts in the outage (no run can be created), logs epoch 0 there and epoch 1 after the
    server is back. A later process (the next ``kedro run``) sends what is left.
    """
    client = MlflowClient(mlflow_server.url)
    experiment = client.create_experiment(f"outage-{tmp_path.name}")
    parent = client.create_run(experiment, run_name="hpo").info.run_id
    buffer = MetricsBuffer(tmp_path / "study" / "mlflow_buffer.jsonl")
    breaker = _breaker()
    tracker = TrialTracker(client, experiment, buffer, parent_run_id=parent, breaker=breaker)
    before = tracker.start(None, "trial_0000", {"a": 1}, {"study_id": "s"})
    assert before and not is_pending(before) and tracker.publish(before, RECORDS[:1])

    mlflow_server.stop()
    stalls = []
    for action, args in [
        (tracker.publish, (before, RECORDS[1:])),
        (tracker.end, (before, "FINISHED")),
        (tracker.start, (None, "trial_0001", {"a": 2}, {"study_id": "s"})),
    ]:
        result, took = _timed(action, *args)
        stalls.append(took)
        time.sleep(2.1)  # past the cooldown: every call probes the stopped server
    ref = result
    assert ref is not None and is_pending(ref)  # trial 1 started in the outage
    published, took = _timed(tracker.publish, ref, RECORDS[:1])
    stalls.append(took)
    assert published is False
    assert max(stalls) < STALL_BOUND_S, stalls  # MLflow's retries alone take minutes
    assert len(buffer.pending()) == 2 + 2

    mlflow_server.start()
    client.search_experiments()  # a cold server on a loaded machine is slow to its first answer
    deadline = time.monotonic() + 120
    while breaker.is_open:  # the breaker probes again once its cooldown is over
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert tracker.publish(ref, RECORDS[1:])  # back mid-trial: run created, journal replayed
    created = tracker.ensure_run(ref)
    assert created and not is_pending(created)
    tracker.set_tags(ref, {"state": "completed"})
    # The next process finds the close of trial 0 that is still owed, and the rest.
    later = TrialTracker(client, experiment, MetricsBuffer(buffer.path), breaker=_breaker())
    assert later.flush_buffer(attempts=5, first_delay_s=1.0)
    assert later.ensure_run(ref) == created  # the reference resolves in any process
    run = client.get_run(created)
    assert run.info.run_name == "trial_0001" and run.data.params == {"a": "2"}
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.tags["state"] == "completed" and run.data.tags["study_id"] == "s"
    for run_id in (before, created):
        assert _history(client, run_id, "val_f1_macro") == [(0, 0.5), (1, 0.6)]
        assert _history(client, run_id, "train_loss") == [(0, 1.0), (1, 0.8)]
    assert _run_status(client, before) == RunStatus.to_string(RunStatus.FINISHED)
    assert not buffer.path.exists() and not later.pending.updates()
    # The resumed trial passes the reference from trial.json: it reopens that same run.
    assert later.start(ref, "trial_0001", {"a": 2}, {}) == created
    trial_runs = [r for r in client.search_runs([experiment]) if r.info.run_name == "trial_0001"]
    assert [r.info.run_id for r in trial_runs if r.data.metrics] == [created]
