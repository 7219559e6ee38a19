"""Hub authentication against a fake local hub and an injected checker: no network, no waiting."""

from __future__ import annotations

import http.server
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from mental_health_hpo.ops.hub_auth import (
    DOCS_URL,
    LOGIN_COMMAND,
    HubAuthError,
    HubAuthGate,
    check_hub_token,
    is_auth_error,
    needs_hub,
)

TOKEN = "hf_FakeFakeFakeFakeFakeFakeFake0123"


class _FakeHub(http.server.BaseHTTPRequestHandler):
    statuses: ClassVar[list[int]] = []
    seen_tokens: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        assert self.path.startswith("/api/whoami")
        type(self).seen_tokens.append(self.headers.get("authorization", ""))
        status = type(self).statuses.pop(0) if type(self).statuses else 200
        body = json.dumps(
            {"name": "tester", "type": "user"} if status == 200 else {"error": "Invalid token"}
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_FakeHub]]:
    import huggingface_hub.constants

    # The suite runs with HF_HUB_OFFLINE=1; this endpoint is 127.0.0.1 only.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    _FakeHub.statuses = []
    _FakeHub.seen_tokens = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _FakeHub.endpoint = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield _FakeHub
    finally:
        server.shutdown()
        server.server_close()


def test_valid_token_passes(fake_hub: type[_FakeHub]) -> None:
    assert check_hub_token(TOKEN, endpoint=fake_hub.endpoint) == "tester"  # type: ignore[attr-defined]
    assert fake_hub.seen_tokens == [f"Bearer {TOKEN}"]


@pytest.mark.parametrize("status", [401, 403])
def test_refused_token_says_how_to_log_in(fake_hub: type[_FakeHub], status: int) -> None:
    fake_hub.statuses = [status]
    with pytest.raises(HubAuthError) as raised:
        check_hub_token(TOKEN, endpoint=fake_hub.endpoint)  # type: ignore[attr-defined]
    message = str(raised.value)
    assert LOGIN_COMMAND in message and DOCS_URL in message
    assert TOKEN not in message


def test_missing_token_says_how_to_log_in(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(HubAuthError, match="hf auth login"):
        check_hub_token(None, endpoint="http://127.0.0.1:9")


def test_gate_pauses_then_resumes_against_the_fake_hub(
    fake_hub: type[_FakeHub], caplog: pytest.LogCaptureFixture
) -> None:
    fake_hub.statuses = [401, 401, 200]
    sleeps: list[float] = []
    now = [1_000_000.0]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    gate = HubAuthGate(
        token=TOKEN,
        endpoint=fake_hub.endpoint,  # type: ignore[attr-defined]
        sleep=sleep,
        clock=lambda: now[0],
    )
    with caplog.at_level(logging.INFO, logger="mental_health_hpo.ops.hub_auth"):
        waited = gate.wait_until_authorized()
    assert sleeps == [300.0, 300.0]  # the default: every 5 minutes
    assert waited == 600.0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # warned once per pause, not once per re-check
    text = warnings[0].getMessage()
    assert LOGIN_COMMAND in text and "1970-01-12T13:46:40" in text
    assert sum("resuming" in r.getMessage() for r in caplog.records) == 1
    assert gate.wait_until_authorized() == 0.0  # open again: no pause, no log
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_gate_with_injected_checker_and_interval() -> None:
    answers = iter([False, False, False, True])
    sleeps: list[float] = []
    gate = HubAuthGate(lambda: next(answers), recheck_interval_s=7, sleep=sleeps.append)
    gate.wait_until_authorized()
    assert sleeps == [7, 7, 7]
    assert gate.pauses == 1 and gate.paused_since is None


def test_gate_gives_up_after_max_wait() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    gate = HubAuthGate(
        lambda: False, recheck_interval_s=60, max_wait_s=120, sleep=sleep, clock=lambda: now[0]
    )
    with pytest.raises(HubAuthError):
        gate.wait_until_authorized()


def test_is_auth_error_recognises_401_and_403_wrapped() -> None:
    class HTTPStatusError(Exception):
        def __init__(self, status: int) -> None:
            super().__init__("error")
            self.response = type("R", (), {"status_code": status})()

    assert is_auth_error(HTTPStatusError(403))
    assert not is_auth_error(HTTPStatusError(500))
    assert is_auth_error(HubAuthError("x"))
    try:
        try:
            raise HTTPStatusError(401)
        except HTTPStatusError as inner:
            raise OSError("could not load the encoder") from inner
    except OSError as outer:
        assert is_auth_error(outer)
    assert not is_auth_error(ConnectionError("connection refused"))
    assert not is_auth_error(ValueError("loss is nan"))


def test_needs_hub(tmp_path: Path) -> None:
    assert not needs_hub("packaged:all-minilm-l6-v2")
    assert not needs_hub(str(tmp_path))
    assert needs_hub("sentence-transformers/all-MiniLM-L6-v2")


def test_default_gate_never_pauses_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert HubAuthGate(sleep=lambda s: pytest.fail("paused")).wait_until_authorized() == 0.0


def test_default_gate_does_not_pause_when_the_hub_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    gate = HubAuthGate(
        token=TOKEN, endpoint="http://127.0.0.1:9", sleep=lambda s: pytest.fail("paused")
    )
    assert gate.wait_until_authorized() == 0.0
