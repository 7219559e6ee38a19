from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mental_health_hpo.tracking import MetricsBuffer, TrialTracker


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


def test_unreachable_store_buffers_to_disk_and_never_raises(tmp_path: Path) -> None:
    client = MlflowClient("http://127.0.0.1:9")  # nothing listens on the discard port
    buffer = MetricsBuffer(tmp_path / "buffer.jsonl")
    tracker = TrialTracker(client, "0", buffer)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    try:
        assert tracker.publish("run-1", RECORDS) is False
    finally:
        del os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(db: Path, artifacts: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{db}",
            "--default-artifact-root",
            str(artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError("mlflow server did not start")


def _stop_server(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


@pytest.mark.slow
def test_buffer_replays_into_a_real_server_that_was_stopped_and_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    port = _free_port()
    db, artifacts = tmp_path / "server.db", tmp_path / "artifacts"
    server = _start_server(db, artifacts, port)
    client = MlflowClient(f"http://127.0.0.1:{port}")
    buffer = MetricsBuffer(tmp_path / "buffer.jsonl")
    tracker = TrialTracker(client, client.create_experiment("outage"), buffer)
    run_id = tracker.start(None, "trial_0000", {"a": 1}, {})
    assert run_id and tracker.publish(run_id, RECORDS[:1])

    _stop_server(server)
    assert tracker.publish(run_id, RECORDS[1:]) is False  # store down: buffered, no exception
    assert len(buffer.pending()) == 2 and buffer.path.exists()

    server = _start_server(db, artifacts, port)
    try:
        assert tracker.flush_buffer(attempts=3, first_delay_s=0.5)
        assert not buffer.path.exists()  # deleted only after the replay was confirmed
        assert _history(client, run_id, "val_f1_macro") == [(0, 0.5), (1, 0.6)]
        assert _history(client, run_id, "train_loss") == [(0, 1.0), (1, 0.8)]
    finally:
        _stop_server(server)
