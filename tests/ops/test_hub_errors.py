"""Which hub errors are retried: real huggingface_hub errors, and a real HTTP server as the hub.

Expected: 401, 403, 404, gated, missing repository/revision/file and offline mode fail at the
first attempt with a message saying what to do; timeouts, dropped connections, 429 and 5xx are
retried with back-off. The errors are the ones huggingface_hub raises (``hf_raise_for_status``
on real HTTP responses), wrapped as transformers wraps them (``OSError(...) from error``).
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from huggingface_hub import errors
from huggingface_hub.utils import hf_raise_for_status, httpx

import mental_health_hpo
from mental_health_hpo.model import EncoderLoadError, load_encoder
from mental_health_hpo.ops.hub_errors import (
    is_auth_error,
    is_permanent_hub_error,
    is_transient_hub_error,
)

URL = "https://huggingface.co/org/model/resolve/main/config.json"


def hub_error(status: int, error_code: str | None = None, url: str = URL) -> Exception:
    """The error huggingface_hub raises for this HTTP answer of the hub."""
    headers = {"X-Error-Code": error_code} if error_code else {}
    response = httpx.Response(status, headers=headers, request=httpx.Request("HEAD", url))
    try:
        hf_raise_for_status(response)
    except Exception as error:
        return error
    raise AssertionError(f"HTTP {status} raised nothing")


def wrapped(cause: BaseException, outer: type[Exception] = OSError) -> Exception:
    """``cause`` as transformers (or huggingface_hub's cache fallback) re-raises it."""
    try:
        raise outer("could not load the model") from cause
    except outer as error:
        return error


def test_the_errors_are_the_hubs_own_types() -> None:
    assert isinstance(hub_error(403, "GatedRepo"), errors.GatedRepoError)
    assert isinstance(hub_error(401, "RepoNotFound"), errors.RepositoryNotFoundError)
    assert isinstance(hub_error(404, "RevisionNotFound"), errors.RevisionNotFoundError)
    assert isinstance(hub_error(404, "EntryNotFound"), errors.RemoteEntryNotFoundError)
    assert type(hub_error(500)) is errors.HfHubHTTPError


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, None),
        (403, None),
        (404, None),
        (401, "RepoNotFound"),
        (403, "GatedRepo"),
        (401, "GatedRepo"),
        (404, "RevisionNotFound"),
        (404, "EntryNotFound"),
    ],
)
def test_refusals_and_missing_things_are_permanent(status: int, code: str | None) -> None:
    for error in (hub_error(status, code), wrapped(hub_error(status, code))):
        assert is_permanent_hub_error(error) and not is_transient_hub_error(error)
    # the hub's cache fallback wraps a failed HEAD in LocalEntryNotFoundError, then transformers
    cache_miss = wrapped(wrapped(hub_error(status, code), errors.LocalEntryNotFoundError))
    assert is_permanent_hub_error(cache_miss)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_overload_and_server_errors_are_transient(status: int) -> None:
    error = wrapped(wrapped(hub_error(status), errors.LocalEntryNotFoundError))
    assert is_transient_hub_error(error) and not is_permanent_hub_error(error)
    assert not is_auth_error(error)


def test_network_errors_are_transient_offline_mode_is_not() -> None:
    request = httpx.Request("HEAD", URL)
    for network in (
        httpx.ReadTimeout("timed out", request=request),
        httpx.ConnectError("connection refused", request=request),
        ConnectionResetError("reset by peer"),
    ):
        assert is_transient_hub_error(wrapped(wrapped(network, errors.LocalEntryNotFoundError)))
    offline = wrapped(
        wrapped(errors.OfflineModeIsEnabled("offline"), errors.LocalEntryNotFoundError)
    )
    assert is_permanent_hub_error(offline) and not is_transient_hub_error(offline)
    assert is_permanent_hub_error(errors.LocalEntryNotFoundError("not in the cache"))


def test_auth_errors_are_the_token_refusals() -> None:
    assert is_auth_error(wrapped(hub_error(401)))
    assert is_auth_error(wrapped(hub_error(403, "GatedRepo")))
    assert is_auth_error(errors.LocalTokenNotFoundError("no token"))
    assert not is_auth_error(wrapped(hub_error(404, "EntryNotFound")))
    assert not is_auth_error(wrapped(hub_error(500)))
    assert not is_auth_error(ValueError("loss is nan"))


class RaisingLoader:
    """Raises ``error`` on every download (the cache lookup fails as a cache miss)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.downloads = 0

    def __call__(self, source: str, *, local_files_only: bool, **_: Any) -> tuple[str, str]:
        if local_files_only:
            raise wrapped(errors.LocalEntryNotFoundError("not cached"))
        self.downloads += 1
        raise self.error


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (wrapped(hub_error(401)), "may read org/model|no repository 'org/model'"),
        (wrapped(hub_error(403)), "HTTP 403"),
        (wrapped(hub_error(403, "GatedRepo")), "accept its terms"),
        (wrapped(hub_error(401, "RepoNotFound")), "no repository 'org/model'"),
        (wrapped(hub_error(404, "RevisionNotFound")), "no such revision"),
    ],
)
def test_encoder_fails_at_once_on_a_permanent_error(error: Exception, says: str) -> None:
    sleeps: list[float] = []
    loader = RaisingLoader(error)
    with pytest.raises(EncoderLoadError, match=says) as raised:
        load_encoder("org/model", loader=loader, sleep=sleeps.append)
    assert loader.downloads == 1 and sleeps == []
    assert "hf download org/model" in str(raised.value)
    assert raised.value.__cause__ is error  # the hub's error stays reachable (auth gate)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_encoder_retries_a_transient_error_with_back_off(status: int) -> None:
    sleeps: list[float] = []
    loader = RaisingLoader(wrapped(wrapped(hub_error(status), errors.LocalEntryNotFoundError)))
    with pytest.raises(EncoderLoadError, match="failed 5 times"):
        load_encoder("org/model", loader=loader, sleep=sleeps.append)
    assert loader.downloads == 5 and sleeps == [1.0, 2.0, 4.0, 8.0]


# --- a real HTTP server as the hub (HF_ENDPOINT), transformers loading from it --------------


class _Hub(http.server.BaseHTTPRequestHandler):
    """Answers every request for ``org/<name>`` as the hub answers for such a repository."""

    answers: ClassVar[dict[str, tuple[int, str | None]]] = {
        "no-token": (401, None),
        "forbidden": (403, None),
        "gated": (403, "GatedRepo"),
        "missing": (401, "RepoNotFound"),
        "gone": (404, "RepoNotFound"),
    }
    requests: ClassVar[dict[str, int]] = {}

    def _answer(self) -> None:
        name = self.path.split("/org/", 1)[-1].split("/", 1)[0]
        status, code = self.answers.get(name, (404, "RepoNotFound"))
        type(self).requests[name] = type(self).requests.get(name, 0) + 1
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._answer()

    def do_HEAD(self) -> None:
        self._answer()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub_endpoint() -> Iterator[str]:
    _Hub.requests = {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


CHILD = """
import json, sys
from mental_health_hpo.model import EncoderLoadError, load_encoder
results = {}
for name in sys.argv[1:]:
    sleeps = []
    try:
        load_encoder("org/" + name, sleep=sleeps.append)
        results[name] = {"loaded": True}
    except EncoderLoadError as error:
        results[name] = {"sleeps": sleeps, "message": str(error)}
print(json.dumps(results))
"""


def _load_in_child(tmp_path: Path, endpoint: str, offline: bool, *names: str) -> dict[str, Any]:
    package_root = str(Path(mental_health_hpo.__file__).parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": package_root,
        "HF_ENDPOINT": endpoint,  # read by huggingface_hub at import: hence a child process
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1" if offline else "0",
        "TRANSFORMERS_OFFLINE": "1" if offline else "0",
        "HF_TOKEN": "",
    }
    env.pop("HF_HUB_CACHE", None)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, *names],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    return dict(json.loads(child.stdout.strip().splitlines()[-1]))


def test_a_real_hub_refusing_is_asked_once(tmp_path: Path, hub_endpoint: str) -> None:
    names = list(_Hub.answers)
    results = _load_in_child(tmp_path, hub_endpoint, False, *names)
    says = {
        "no-token": "HTTP 401",
        "forbidden": "HTTP 403",
        "gated": "accept its terms at https://huggingface.co/org/gated",
        "missing": "no repository 'org/missing'",
        "gone": "no repository 'org/gone'",
    }
    for name in names:
        assert results[name]["sleeps"] == [], (name, results[name])  # no retry
        assert says[name] in results[name]["message"], (name, results[name])
        assert "hf download org/" + name in results[name]["message"]
        assert _Hub.requests[name] <= 8, (name, _Hub.requests)  # one attempt's look-ups


def test_offline_mode_fails_at_once_and_says_so(tmp_path: Path, hub_endpoint: str) -> None:
    results = _load_in_child(tmp_path, hub_endpoint, True, "not-cached")
    assert results["not-cached"]["sleeps"] == []
    assert "HF_HUB_OFFLINE=1 is set" in results["not-cached"]["message"]
    assert _Hub.requests == {}  # offline: the hub is never asked
