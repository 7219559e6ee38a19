"""Where the secrets of the study database and of the tracking server come from: never a URL.

A password inside ``hpo.study.storage`` or a tracking URI travels in argv (``ps``), in Kedro's
run parameters and in the shell history before anything can mask it. The drivers already read
their secrets from their own environment variables, so the project only has to hand them over:

- the study database: libpq (under psycopg) reads ``PGPASSWORD``, ``PGPASSFILE`` (``.pgpass``),
  ``PGUSER``, ``PGSSLMODE``...; ``conf/local/credentials.yml`` may hold them under
  :data:`STUDY_STORAGE_CREDENTIALS` (values as ``${oc.env:...}`` or literal), and the project
  hook exports them before any node runs (:func:`export_driver_variables`), as kedro-mlflow
  exports ``server.credentials`` for MLflow;
- the object store of a study in a bucket (``hpo.study.experiments_dir=s3://...``): botocore
  (under s3fs) reads ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
  ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``...; ``credentials.yml`` may hold them under
  :data:`OBJECT_STORE_CREDENTIALS`, exported by the same hook;
- the tracking server: MLflow reads ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` or
  ``MLFLOW_TRACKING_TOKEN`` (kedro-mlflow: ``server.credentials`` in ``mlflow.yml``).

A URL that still carries a password works (and is masked everywhere, ops/masking.py); the
warning of :func:`password_in_url_warning` says where the password belongs instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

#: The ``conf/local/credentials.yml`` key holding the study database's libpq variables.
STUDY_STORAGE_CREDENTIALS = "hpo_study_storage"

#: The ``conf/local/credentials.yml`` key holding the object store's botocore variables.
OBJECT_STORE_CREDENTIALS = "experiments_object_store"

#: libpq's environment variables (PGPASSWORD, PGPASSFILE, PGUSER, PGSSLMODE, PGSSLROOTCERT...).
_LIBPQ_VARIABLE = re.compile(r"PG[A-Z_]+")
#: botocore's (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE...).
_AWS_VARIABLE = re.compile(r"AWS_[A-Z0-9_]+")
#: Per credentials entry: the variables it may hold, and what to say when a name is not one.
_ENTRIES = {
    STUDY_STORAGE_CREDENTIALS: (
        _LIBPQ_VARIABLE,
        "libpq",
        "PGPASSWORD: ${oc.env:POSTGRES_PASSWORD}",
        "a libpq environment variable: use PGPASSWORD, PGPASSFILE, PGUSER, PGSSLMODE... (the "
        "names libpq reads, https://www.postgresql.org/docs/current/libpq-envars.html)",
    ),
    OBJECT_STORE_CREDENTIALS: (
        _AWS_VARIABLE,
        "botocore",
        "AWS_SECRET_ACCESS_KEY: ${oc.env:AWS_SECRET_ACCESS_KEY}",
        "an object-store variable: use AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_DEFAULT_REGION, AWS_PROFILE... (the "
        "names botocore reads, under s3fs)",
    ),
}
_URL_PASSWORD = re.compile(r"(?i)^[a-z][a-z0-9+.\-]*://[^\s:/@]*:[^\s@/]+@")

#: Where each kind of URL's password belongs, for the warning.
_STUDY_STORAGE_HOME = (
    "the PGPASSWORD environment variable (or PGPASSFILE, a .pgpass file), or "
    f"conf/local/credentials.yml under {STUDY_STORAGE_CREDENTIALS}: {{PGPASSWORD: "
    "${oc.env:...}} (conf/README.md)"
)
_TRACKING_HOME = (
    "the MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) "
    "environment variables, or conf/local/credentials.yml under the key that "
    "server.credentials names in conf/local/mlflow.yml (conf/README.md)"
)


class CredentialsConfigError(ValueError):
    """A credentials entry the drivers cannot use; the message names the key and the fix."""


def has_password(url: str) -> bool:
    """True when ``url`` is ``scheme://user:password@...``."""
    return bool(_URL_PASSWORD.match(url.strip()))


def password_in_url_warning(url: str, setting: str, kind: str) -> str | None:
    """The warning for a password inside ``url`` (None when it has none).

    ``setting`` names where the URL came from (``hpo.study.storage``); ``kind`` is ``"study
    storage"`` or ``"tracking"``, and picks where the password belongs.
    """
    if not has_password(url):
        return None
    home = _TRACKING_HOME if kind == "tracking" else _STUDY_STORAGE_HOME
    return (
        f"{setting} has a password inside its URL: it still works and is masked in logs and "
        "MLflow, but it shows in the process list (ps), in Kedro's run parameters and in your "
        f"shell history. Drop it from the URL (scheme://user@host/...) and put it in {home}."
    )


def driver_variables(entry: Any, key: str = STUDY_STORAGE_CREDENTIALS) -> dict[str, str]:
    """The driver variables of a credentials entry, checked: names ``PG...`` (the study
    database) or ``AWS_...`` (the object store), values scalars.

    Raises :class:`CredentialsConfigError` naming the entry, the bad name and what is expected.
    """
    pattern, kind, example, expected = _ENTRIES.get(key, _ENTRIES[STUDY_STORAGE_CREDENTIALS])
    if entry is None:
        return {}
    if not isinstance(entry, Mapping):
        raise CredentialsConfigError(
            f"credentials.yml: {key} must be a mapping of {kind} environment variables "
            f"(e.g. {key}: {{{example}}}), got {type(entry).__name__}"
        )
    variables: dict[str, str] = {}
    for name, value in entry.items():
        if not isinstance(name, str) or not pattern.fullmatch(name):
            raise CredentialsConfigError(f"credentials.yml: {key}.{name} is not {expected}")
        if value is None:
            continue  # ${oc.env:VAR,null}: not set here, the environment decides
        if isinstance(value, Mapping | list):
            raise CredentialsConfigError(
                f"credentials.yml: {key}.{name} must be a string, got {type(value).__name__}"
            )
        variables[name] = str(value)
    return variables


def export_driver_variables(credentials: Mapping[str, Any]) -> list[str]:
    """Export the study database's and the object store's entries of ``credentials`` into
    this process's environment (both checked before either is exported).

    The names exported (never the values), for a log line. The process's children (trial
    processes, DataLoader workers) inherit them, like the variables of the shell.
    """
    variables: dict[str, str] = {}
    for key in _ENTRIES:
        variables.update(driver_variables(credentials.get(key), key))
    os.environ.update(variables)
    return sorted(variables)
