"""Mask secrets before anything is written (a leaked token outlives the run that leaked it): logs,
stdout, errors, MLflow, reports.

Why regexes on text rather than a list of known secrets: secrets reach us through config values,
URLs and third-party exception messages we do not control. What is masked:

- the whole value of anything *named* like a secret (``*key*``, ``*token*``, ``*secret*``,
  ``*password*``, ``*credential*``: params, tags, record fields, config keys), see
  :func:`mask_named`;

- Hugging Face tokens (``hf_`` + 30 or more letters/digits);
- bearer tokens (``Bearer <token>``) and ``token=``/``password=``/``api_key=`` style assignments;
- passwords in URLs (``scheme://user:password@host``: the user stays, the password goes);
- email addresses;
- long opaque keys: 32+ characters of base64/url-safe alphabet that mix upper case, lower case
  and digits.

What stays readable: the project's own ids and hashes. A hex-only string (a SHA-256, an MD5, a
git sha) or a canonical UUID is never an opaque key, since real API keys are mixed-case.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9\-._~+/]{8,}=*")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/@]*):([^\s@/]+)@")
_ASSIGNMENT = re.compile(
    r"(?i)\b([a-z0-9_\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key)s?)\b"
    r"(['\"]?\s*[=:]\s*)(['\"]?)(?=[^\s'\",;&]*[a-z])([^\s'\",;&]{4,})"
)
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")
_OPAQUE = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{32,}={0,2}(?![A-Za-z0-9+/_\-])")
_HEX = re.compile(r"[0-9a-fA-F]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_SEGMENTS = re.compile(r"[/+_\-]")
# Words of a name (``hub.apiKey`` -> hub, api, key) and the words that make it a secret's name:
# key, token, secret, password, credential, alone or with a prefix (apikey, authtoken), but not
# "tokens" or "tokenizer" (max_answer_tokens is a length).
_NAME_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_SECRET_WORD = re.compile(
    r"[a-z0-9]*(key|token|secrets?|passw(or)?d|pwd|passphrase|credentials?)", re.IGNORECASE
)
# A last word that says the value only names or identifies a secret: token_env: HF_TOKEN.
_REFERENCE_WORDS = frozenset({"env", "id", "ids", "hash", "sha", "sha256", "fingerprint"})


def _is_opaque_key(candidate: str) -> bool:
    """Mixed case + digits and not a hex hash, a UUID or a plain identifier/path word."""
    core = candidate.rstrip("=")
    if _HEX.fullmatch(core) or _UUID.fullmatch(core):
        return False
    # Paths and hub ids ("sentence-transformers/all-MiniLM-L6-v2") are short words joined by
    # separators; a key has a long random run.
    if max(len(part) for part in _SEGMENTS.split(core)) < 16:
        return False
    upper = sum(c.isupper() for c in core)
    lower = sum(c.islower() for c in core)
    digits = sum(c.isdigit() for c in core)
    return upper >= 2 and lower >= 2 and digits >= 2


def _mask_opaque(match: re.Match[str]) -> str:
    text = match.group(0)
    return MASK if _is_opaque_key(text) else text


def mask_secrets(text: str) -> str:
    """``text`` with every recognised secret replaced by ``***``."""
    if not text:
        return text
    masked = _HF_TOKEN.sub(MASK, text)
    masked = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", masked)
    masked = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", masked)
    masked = _ASSIGNMENT.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{MASK}", masked)
    masked = _EMAIL.sub(MASK, masked)
    return _OPAQUE.sub(_mask_opaque, masked)


def is_secret_name(name: str) -> bool:
    """True for a param, tag or field named like a secret (``api_key``, ``hub.token``...)."""
    words = [w.lower() for w in _NAME_WORDS.findall(name)]
    if not words or words[-1] in _REFERENCE_WORDS:
        return False
    return any(_SECRET_WORD.fullmatch(word) for word in words)


def mask_named(name: str, value: Any) -> Any:
    """``value`` masked whole when ``name`` looks like a secret's name, else ``mask_secrets``.

    Why by name too: a key such as ``AKIAIOSFODNN7EXAMPLE`` (20 upper-case letters and digits)
    looks like no secret at all, but a param called ``api_key`` holds one whatever it looks like.
    Numbers, booleans and None pass through (no secret is a number here).
    """
    if not isinstance(value, str):
        return value
    if value and is_secret_name(name):
        return MASK
    return mask_secrets(value)


def _mask_value(key: str | None, value: Any) -> Any:
    if isinstance(value, str):
        return mask_named(key, value) if key is not None else mask_secrets(value)
    return mask_obj(value)


def mask_obj(obj: Any) -> Any:
    """A copy of ``obj`` (dicts, lists, tuples, strings) with secrets masked; keys are kept.

    Values of fields named like secrets (``password``, ``token``, ``api_key``, ``credentials``...)
    are masked whole (:func:`mask_named`); other strings go through :func:`mask_secrets`;
    numbers and None pass through.
    """
    if isinstance(obj, str):
        return mask_secrets(obj)
    if isinstance(obj, Mapping):
        return {k: _mask_value(str(k), v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [mask_obj(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(mask_obj(v) for v in obj)
    return obj


class MaskingFilter(logging.Filter):
    """Masks a record's message, its arguments, its exception text and its extra string fields.

    The message is rendered once (``msg % args``), masked, and stored back with ``args=()``, so
    every handler after this filter sees only masked text. Attach it to handlers (not loggers):
    logger filters are skipped for records propagated from child loggers.
    """

    _STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_masked", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what we have
            message = str(record.msg)
        record.msg = mask_secrets(message)
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        if record.exc_info:
            # Formatters and rich re-render exc_info: replace it with the masked text only.
            record.exc_info = None
        if record.stack_info:
            record.stack_info = mask_secrets(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in self._STANDARD and not key.startswith("_"):
                record.__dict__[key] = _mask_value(key, value)
        record._masked = True
        return True
