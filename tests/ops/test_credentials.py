"""Credentials of the study database and the tracking server: credentials.yml or the drivers'
own environment variables, never a URL.

- ``credentials.yml``'s ``hpo_study_storage`` entry, with ``${oc.env:...}``, reaches libpq
  through the project hook when a real KedroSession loads its context, and a real PostgreSQL
  role that must give its password (SCRAM) accepts a URL without one;
- a URL that still holds a password works, and the warning says where the password belongs
  without repeating it;
- a credentials entry libpq cannot use stops with a message naming the key.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from servers import PostgresServer

from mental_health_hpo.ops.credentials import (
    OBJECT_STORE_CREDENTIALS,
    STUDY_STORAGE_CREDENTIALS,
    CredentialsConfigError,
    driver_variables,
    export_driver_variables,
    has_password,
    password_in_url_warning,
)

ROLE = "hpo_credentials"
DATABASE = "credentials_optuna"


@pytest.fixture
def no_pg_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """PGPASSWORD unset for the test and restored (to unset) after it, whoever sets it."""
    monkeypatch.setenv("PGPASSWORD", "placeholder")
    monkeypatch.delenv("PGPASSWORD")  # recorded as absent: teardown removes a later value
    yield


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://hpo:pw@db:5432/optuna", True),
        ("http://user:tok3n@mlflow.example/", True),
        ("postgresql+psycopg://hpo@db:5432/optuna", False),
        ("sqlite:///experiments/optuna.db", False),
        ("http://127.0.0.1:5000", False),  # a port is not a password
        ("journal:///experiments/study.log", False),
    ],
)
def test_a_password_in_a_url_is_recognised(url: str, expected: bool) -> None:
    assert has_password(url) is expected
    assert (password_in_url_warning(url, "hpo.study.storage", "study storage") is None) is (
        not expected
    )


def test_the_warning_says_where_each_password_belongs_and_never_repeats_it() -> None:
    storage = password_in_url_warning("postgresql://u:Zq9pw@h/db", "hpo.study.storage", "study")
    tracking = password_in_url_warning("https://u:Zq9pw@mlflow/", "--tracking-uri", "tracking")
    assert storage is not None and tracking is not None
    assert "Zq9pw" not in storage + tracking
    assert "hpo.study.storage" in storage and "PGPASSWORD" in storage
    assert "credentials.yml" in storage and STUDY_STORAGE_CREDENTIALS in storage
    assert "MLFLOW_TRACKING_PASSWORD" in tracking and "MLFLOW_TRACKING_TOKEN" in tracking


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"password": "x"}, r"hpo_study_storage\.password is not a libpq environment variable"),
        ({"PGPASSWORD": {"nested": 1}}, r"hpo_study_storage\.PGPASSWORD must be a string"),
        ("just-a-password", r"hpo_study_storage must be a mapping of libpq environment"),
    ],
)
def test_an_entry_libpq_cannot_use_is_refused_by_name(entry: object, message: str) -> None:
    with pytest.raises(CredentialsConfigError, match=message):
        driver_variables(entry)


def test_libpq_variables_are_exported_and_a_null_leaves_the_environment_alone(
    no_pg_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGSSLMODE", "prefer")
    exported = export_driver_variables(
        {STUDY_STORAGE_CREDENTIALS: {"PGPASSWORD": "s3", "PGSSLMODE": None, "PGPORT": 5433}}
    )
    assert exported == ["PGPASSWORD", "PGPORT"]
    assert (os.environ["PGPASSWORD"], os.environ["PGPORT"]) == ("s3", "5433")
    assert os.environ["PGSSLMODE"] == "prefer"
    assert export_driver_variables({"other": {"PGPASSWORD": "no"}}) == []


def test_the_object_store_entry_is_exported_and_a_wrong_name_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.setenv(name, "before")  # recorded, so the test's exports are undone
        monkeypatch.delenv(name)
    exported = export_driver_variables(
        {
            OBJECT_STORE_CREDENTIALS: {
                "AWS_ACCESS_KEY_ID": "key",
                "AWS_SECRET_ACCESS_KEY": "secret",
                "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            }
        }
    )
    assert exported == ["AWS_ACCESS_KEY_ID", "AWS_ENDPOINT_URL", "AWS_SECRET_ACCESS_KEY"]
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == "secret"
    with pytest.raises(
        CredentialsConfigError,
        match=r"experiments_object_store\.PGPASSWORD is not an object-store variable",
    ):
        export_driver_variables({OBJECT_STORE_CREDENTIALS: {"PGPASSWORD": "no"}})


@pytest.fixture
def password_database(postgres_server: PostgresServer) -> tuple[str, str]:
    """(URL without a password, the password) of a role that must give it."""
    password = f"cred-{secrets.token_hex(10)}"
    postgres_server.add_password_role(ROLE, password, (DATABASE,))
    return f"postgresql+psycopg://{ROLE}@127.0.0.1:{postgres_server.port}/{DATABASE}", password


def _connects(url: str) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return bool(connection.execute(sa.text("SELECT 1")).scalar() == 1)
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_credentials_yml_reaches_libpq_through_the_kedro_context(
    kedro_project: Path,
    password_database: tuple[str, str],
    no_pg_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kedro.framework.session import KedroSession

    url, password = password_database
    assert not _connects(url), "the role must be refused without its password"
    monkeypatch.setenv("STUDY_DB_PASSWORD", password)
    (kedro_project / "conf/local/credentials.yml").write_text(
        f"{STUDY_STORAGE_CREDENTIALS}:\n  PGPASSWORD: ${{oc.env:STUDY_DB_PASSWORD}}\n"
    )
    with KedroSession.create(project_path=kedro_project) as session:
        session.load_context()  # runs the after_context_created hooks
    assert os.environ.get("PGPASSWORD") == password
    assert _connects(url)


@pytest.mark.postgres
def test_a_bad_credentials_entry_stops_the_kedro_context(
    kedro_project: Path, no_pg_env: None
) -> None:
    from kedro.framework.session import KedroSession

    (kedro_project / "conf/local/credentials.yml").write_text(
        f"{STUDY_STORAGE_CREDENTIALS}:\n  pasword: typo\n"
    )
    with (
        KedroSession.create(project_path=kedro_project) as session,
        pytest.raises(CredentialsConfigError, match="pasword is not a libpq"),
    ):
        session.load_context()
    assert "PGPASSWORD" not in os.environ


@pytest.mark.postgres
def test_a_password_in_the_url_still_works_and_the_warning_says_where_it_belongs(
    password_database: tuple[str, str],
    no_pg_env: None,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mental_health_hpo.pipelines.hpo.init_study import main as init_study

    url, password = password_database
    with_password = url.replace(f"{ROLE}@", f"{ROLE}:{password}@")
    with caplog.at_level(logging.WARNING):
        init_study(["--storage", with_password])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("--storage has a password inside its URL" in w for w in warnings), warnings
    assert any("PGPASSWORD" in w for w in warnings)
    printed = capsys.readouterr()
    assert "optuna and lease tables ready" in printed.out
    assert password not in printed.out + printed.err + caplog.text
    tables = sa.inspect(sa.create_engine(with_password)).get_table_names()
    assert {"studies", "trials", "mh_hpo_leases"} <= set(tables)


@pytest.mark.postgres
def test_a_worker_given_a_password_in_its_storage_url_warns_and_opens_the_study(
    password_database: tuple[str, str],
    no_pg_env: None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from mental_health_hpo.hpo.setup import StudySetup

    url, password = password_database
    with_password = url.replace(f"{ROLE}@", f"{ROLE}:{password}@")
    study = {"name": "credentials", "storage": with_password, "experiments_dir": str(tmp_path)}
    with caplog.at_level(logging.WARNING):
        setup = StudySetup.from_params({"study": study}, tmp_path)
    assert "hpo.study.storage has a password inside its URL" in caplog.text
    assert password not in caplog.text
    opened = setup.open({"fingerprint": "f" * 64}, tmp_path)
    assert opened.study_name == "credentials"


def test_a_tracking_uri_with_a_password_is_warned_about_before_a_pipeline_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import mlflow

    from mental_health_hpo.hooks import CredentialsHooks

    previous = mlflow.get_tracking_uri()
    try:
        mlflow.set_tracking_uri("http://deployer:Trk9secret@127.0.0.1:9")
        with caplog.at_level(logging.WARNING):
            CredentialsHooks().before_pipeline_run()
        mlflow.set_tracking_uri("http://127.0.0.1:9")
        CredentialsHooks().before_pipeline_run()
    finally:
        mlflow.set_tracking_uri(previous)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "MLFLOW_TRACKING_PASSWORD" in warnings[0]
    assert "Trk9secret" not in caplog.text


@pytest.mark.postgres
def test_validate_env_reads_the_study_password_from_credentials_yml(
    kedro_project: Path,
    password_database: tuple[str, str],
    no_pg_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`make validate-env` connects as the workers do: a password kept in credentials.yml alone
    passes the storage check (it failed before: only the run's hook exported it)."""
    from mental_health_hpo.validate_env import run_checks

    url, password = password_database
    monkeypatch.setenv("STUDY_DB_PASSWORD", password)
    (kedro_project / "conf/local/credentials.yml").write_text(
        f"{STUDY_STORAGE_CREDENTIALS}:\n  PGPASSWORD: ${{oc.env:STUDY_DB_PASSWORD}}\n"
    )
    (kedro_project / "conf/local/parameters_hpo.yml").write_text(
        f"hpo:\n  study:\n    storage: {url}\n"
    )
    checks = {check.name: check for check in run_checks(kedro_project)}
    assert checks["optuna_storage"].ok, checks["optuna_storage"].detail
    assert password not in checks["optuna_storage"].detail
