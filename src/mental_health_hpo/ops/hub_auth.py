"""Hugging Face hub authentication: check the token before any download, pause a study on 401/403.

Why a gate rather than retries: a revoked or expired token does not heal with backoff. A study
that meets 401/403 stops starting trials and downloads, warns once with the time and the
re-login command, re-checks every ``recheck_interval_s`` and resumes by itself once the token
works again. Checker, sleep and clock are injectable so tests never touch the network or wait.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LOGIN_COMMAND = "hf auth login"
DOCS_URL = "https://huggingface.co/docs/huggingface_hub/quick-start#authentication"
PACKAGED_SENTINEL = "packaged:all-minilm-l6-v2"
AUTH_STATUSES = frozenset({401, 403})
_STATUS_TEXT = re.compile(r"\b(401|403)\b[^\n]{0,40}?(client error|unauthorized|forbidden)", re.I)


class HubAuthError(RuntimeError):
    """No usable Hugging Face token: says how to log in and where the docs are."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"Hugging Face hub authentication failed: {reason}. Log in with `{LOGIN_COMMAND}` "
            f"(or set HF_TOKEN), then retry. Docs: {DOCS_URL}"
        )
        self.reason = reason


def needs_hub(encoder: str) -> bool:
    """True when ``encoder`` is a hub id: not the packaged sentinel and not a local folder."""
    if encoder == PACKAGED_SENTINEL:
        return False
    return not Path(encoder).expanduser().is_dir()


def hub_offline() -> bool:
    """True when huggingface_hub runs offline (``HF_HUB_OFFLINE=1``): no download can happen."""
    try:
        from huggingface_hub import constants
    except ImportError:
        return True
    return bool(constants.HF_HUB_OFFLINE)


def _status_of(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    for holder in (response, error):
        for name in ("status_code", "status"):
            value = getattr(holder, name, None)
            if isinstance(value, int):
                return value
    return None


def is_auth_error(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it was raised from) is a hub 401/403 or a bad token.

    Recognises huggingface_hub's ``HfHubHTTPError`` (and its gated/repository subclasses),
    requests' and httpx's ``HTTPStatusError``-style errors (``.response.status_code``),
    :class:`HubAuthError`, and messages like "401 Client Error" from wrappers that kept only text
    (transformers re-raises hub errors as ``OSError``).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, HubAuthError):
            return True
        if type(current).__name__ in {"LocalTokenNotFoundError", "GatedRepoError"}:
            return True
        if _status_of(current) in AUTH_STATUSES:
            return True
        if _STATUS_TEXT.search(str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def check_hub_token(token: str | None = None, endpoint: str | None = None) -> str:
    """Check the token against the hub's ``whoami``; the user name, or :class:`HubAuthError`.

    ``token`` defaults to the one huggingface_hub finds (``HF_TOKEN``, ``hf auth login``).
    Errors other than a missing or refused token (the hub unreachable) are raised as they are.
    """
    from huggingface_hub import HfApi, get_token

    resolved = token or get_token()
    if not resolved:
        raise HubAuthError("no token found (HF_TOKEN is unset and nobody is logged in)")
    try:
        info: dict[str, Any] = HfApi(endpoint=endpoint).whoami(token=resolved)
    except Exception as error:
        if is_auth_error(error):
            raise HubAuthError(f"the hub refused the token ({_status_of(error) or 401})") from None
        raise
    return str(info.get("name", ""))


class HubAuthGate:
    """Blocks new trials and downloads while the hub refuses the token.

    ``checker()`` returns True when authorized (default: :func:`check_hub_token`; a hub that
    cannot be reached counts as authorized here, the encoder loader's retries handle it).
    """

    def __init__(
        self,
        checker: Callable[[], bool] | None = None,
        *,
        token: str | None = None,
        endpoint: str | None = None,
        recheck_interval_s: float = 300.0,
        max_wait_s: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._checker = checker or self._default_checker
        self.token = token
        self.endpoint = endpoint
        self.recheck_interval_s = recheck_interval_s
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._clock = clock
        self.paused_since: float | None = None
        self.pauses = 0

    def _default_checker(self) -> bool:
        if hub_offline():
            return True  # nothing is downloaded offline: no reason to pause
        try:
            check_hub_token(self.token, self.endpoint)
        except HubAuthError:
            return False
        except Exception as error:  # unreachable: not an auth problem
            logger.info("Hugging Face hub not reachable for the token check: %s", error)
        return True

    def wait_until_authorized(self) -> float:
        """Return at once when the token works; else pause until it does. Seconds paused.

        Warns once per pause (time, re-login command, docs), logs the resume once; raises
        :class:`HubAuthError` after ``max_wait_s`` when one is set.
        """
        if self._checker():
            return 0.0
        started = self._clock()
        self.paused_since = started
        self.pauses += 1
        logger.warning(
            "Hugging Face hub refused the token (401/403) at %s: study paused, no new trial and "
            "no download. Log in again with `%s` (or set HF_TOKEN); re-checking every %.0f s. "
            "Docs: %s",
            datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
            LOGIN_COMMAND,
            self.recheck_interval_s,
            DOCS_URL,
        )
        while True:
            if self.max_wait_s is not None and self._clock() - started >= self.max_wait_s:
                self.paused_since = None
                raise HubAuthError(f"still refused after {self.max_wait_s:.0f} s")
            self._sleep(self.recheck_interval_s)
            if self._checker():
                waited = self._clock() - started
                self.paused_since = None
                logger.info("Hugging Face token accepted again after %.0f s: resuming", waited)
                return waited
