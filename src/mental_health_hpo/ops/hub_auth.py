"""Hugging Face hub authentication: check the token before any download, pause a study on 401/403.

Why a gate rather than retries: a revoked or expired token does not heal with backoff. A study
that meets 401/403 stops starting trials and downloads, warns once with the time and the
re-login command, re-checks every ``recheck_interval_s`` and resumes by itself once the token
works again. Checker, sleep and clock are injectable so tests never touch the network or wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mental_health_hpo.ops.hub_errors import HubAuthError, http_status, is_auth_error

__all__ = [
    "DOCS_URL",
    "LOGIN_COMMAND",
    "PACKAGED_SENTINEL",
    "HubAuthError",
    "HubAuthGate",
    "check_hub_token",
    "hub_offline",
    "is_auth_error",
    "needs_hub",
]
logger = logging.getLogger(__name__)

LOGIN_COMMAND = HubAuthError.LOGIN_COMMAND
DOCS_URL = HubAuthError.DOCS_URL
PACKAGED_SENTINEL = "packaged:all-minilm-l6-v2"


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
            raise HubAuthError(f"the hub refused the token ({http_status(error) or 401})") from None
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
