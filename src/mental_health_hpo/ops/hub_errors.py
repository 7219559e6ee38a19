"""What a Hugging Face hub error means for the caller: retry it, fail at once, or pause for a token.

Why by type: huggingface_hub raises typed errors (``huggingface_hub.errors``) and transformers
re-raises them as ``OSError(...) from error``, so the chain of causes still holds the hub's own
error and the HTTP response it came from. A retry helps only when the hub or the network was
briefly unwell (timeouts, dropped connections, 408/429/5xx); a missing, gated or unauthorized
repository, a revision or file that does not exist and offline mode stay as they are however
often one asks, so those fail at once with the hub's message.
"""

from __future__ import annotations

from collections.abc import Iterator

#: Statuses a second attempt can fix: request timeout, rate limit, server errors.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Statuses that say the token itself is missing, invalid or lacks the permission.
AUTH_STATUSES = frozenset({401, 403})


class HubAuthError(RuntimeError):
    """No usable Hugging Face token: says how to log in and where the docs are."""

    LOGIN_COMMAND = "hf auth login"
    DOCS_URL = "https://huggingface.co/docs/huggingface_hub/quick-start#authentication"

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"Hugging Face hub authentication failed: {reason}. Log in with "
            f"`{self.LOGIN_COMMAND}` (or set HF_TOKEN), then retry. Docs: {self.DOCS_URL}"
        )
        self.reason = reason


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error``, then what it was raised from (``__cause__``, else ``__context__``), and so on."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def http_status(error: BaseException) -> int | None:
    """The HTTP status of an error that carries a response (``HfHubHTTPError``, httpx's)."""
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _transient_types() -> tuple[type[BaseException], ...]:
    from huggingface_hub.utils import httpx

    return (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, TimeoutError)


def _permanent_types() -> tuple[type[BaseException], ...]:
    from huggingface_hub import errors

    return (
        HubAuthError,
        errors.LocalTokenNotFoundError,
        errors.OfflineModeIsEnabled,
        errors.RepositoryNotFoundError,  # GatedRepoError is one
        errors.RevisionNotFoundError,
        errors.EntryNotFoundError,  # Remote- and LocalEntryNotFoundError
        errors.DisabledRepoError,
        errors.HFValidationError,  # a malformed repo id
    )


def is_transient_hub_error(error: BaseException) -> bool:
    """True when trying again can succeed: a timeout, a dropped connection, 408/429/5xx.

    The hub wraps a failed request in ``LocalEntryNotFoundError`` ("cannot find the requested
    files in the local cache") whatever made it fail, so the chain is read for the first error
    that says why: a network error or a transient status means retry; a permanent type
    (missing, gated, offline, ...) or any other status means the answer will not change.
    """
    transient = _transient_types()
    offline = _offline_type()
    for cause in causes(error):
        status = http_status(cause)
        if status is not None:
            return status in TRANSIENT_STATUSES
        if isinstance(cause, offline):
            return False
        if isinstance(cause, transient):
            return True
        if isinstance(cause, ConnectionError):  # not OfflineModeIsEnabled (checked above)
            return True
    return False


def _offline_type() -> type[BaseException]:
    from huggingface_hub.errors import OfflineModeIsEnabled

    return OfflineModeIsEnabled


def is_permanent_hub_error(error: BaseException) -> bool:
    """True when the hub's answer will not change by asking again (see the module docstring)."""
    if is_transient_hub_error(error):
        return False
    permanent = _permanent_types()
    return any(
        isinstance(cause, permanent) or http_status(cause) in (400, 401, 403, 404)
        for cause in causes(error)
    )


def is_auth_error(error: BaseException) -> bool:
    """True when ``error`` (or what it was raised from) is about the token: 401/403 or no token.

    A gated or missing repository (the hub answers 401/403 for those too, typed
    ``RepositoryNotFoundError``/``GatedRepoError``) counts when the request carried no valid
    token, which :class:`HubAuthError`'s token check tells apart; the callers that pause a study
    re-check the token before waiting (see ``HubAuthGate.token_accepted``).
    """
    from huggingface_hub.errors import LocalTokenNotFoundError

    return any(
        isinstance(cause, (HubAuthError, LocalTokenNotFoundError))
        or http_status(cause) in AUTH_STATUSES
        for cause in causes(error)
    )


def describe_permanent(error: BaseException, repo_id: str) -> str:
    """One sentence on why ``repo_id`` cannot be fetched and what to do, from the hub's error.

    The chain is searched for the most telling cause first: the hub's typed repository errors,
    then the HTTP status, then offline mode and missing files (the hub wraps any failed look-up
    in ``LocalEntryNotFoundError``, so that one says least).
    """
    from huggingface_hub import errors

    chain = list(causes(error))

    def first(kind: type[BaseException]) -> BaseException | None:
        return next((cause for cause in chain if isinstance(cause, kind)), None)

    login = f"`{HubAuthError.LOGIN_COMMAND}` (or set HF_TOKEN)"
    statuses = [status for status in map(http_status, chain) if status is not None]
    if first(errors.GatedRepoError):
        return (
            f"{repo_id} is a gated repository: accept its terms at "
            f"https://huggingface.co/{repo_id} with the account of your token, then log in "
            f"with {login}"
        )
    if first(errors.RepositoryNotFoundError):
        return (
            f"the hub has no repository {repo_id!r} that your token may read: check the id, "
            f"or for a private repository log in with {login}"
        )
    if first(errors.RevisionNotFoundError):
        return f"{repo_id} has no such revision: check the configured revision"
    if statuses and statuses[0] in AUTH_STATUSES:
        return (
            f"the hub refused the request (HTTP {statuses[0]}): log in with {login} using a "
            f"token that may read {repo_id}"
        )
    if first(errors.OfflineModeIsEnabled) or (
        first(errors.LocalEntryNotFoundError) and _offline_now()
    ):
        return (
            "HF_HUB_OFFLINE=1 is set and the files are not in the local cache: download them "
            "once with the hub reachable, or unset HF_HUB_OFFLINE"
        )
    if statuses:
        return f"the hub answered HTTP {statuses[0]} ({type(chain[0]).__name__}: {chain[0]})"
    missing = first(errors.EntryNotFoundError)
    if missing is not None:
        return f"{repo_id} lacks a file the model needs: {missing}"
    return f"{type(error).__name__}: {error}"


def _offline_now() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)
