"""Secret masking: each kind is masked, the project's ids and hashes stay readable."""

from __future__ import annotations

import logging

import pytest

from mental_health_hpo.ops.masking import MASK, MaskingFilter, mask_obj, mask_secrets

HF = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345"
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig"
PASSWORD = "s3cretPassw0rd"
EMAIL = "jane.doe@example.org"
KEY = "AKIAxY7abcD9eFgH1jKlMnOpQrStUvWx9z"
SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
UUID = "123e4567-e89b-12d3-a456-426614174000"
RUN_ID = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"token {HF} here", HF),
        (f"Authorization: Bearer {BEARER}", BEARER),
        (f"mlflow at http://user:{PASSWORD}@127.0.0.1:9/", PASSWORD),
        (f"postgresql://optuna:{PASSWORD}@db/optuna", PASSWORD),
        (f"contact {EMAIL}", EMAIL),
        (f"key={KEY}", KEY),
        (f"a bare key {KEY} in a sentence", KEY),
        ('{"api_key": "short1Secret"}', "short1Secret"),
    ],
)
def test_each_secret_kind_is_masked(text: str, secret: str) -> None:
    masked = mask_secrets(text)
    assert secret not in masked
    assert MASK in masked


@pytest.mark.parametrize(
    "text",
    [
        f"checkpoint sha256 {SHA256}",
        f"study uuid {UUID}",
        f"mlflow run {RUN_ID}",
        "encoder sentence-transformers/all-MiniLM-L6-v2",
        "/tmp/pytest-of-root/pytest-12/test_x0/experiments/study_a/trial_0003/checkpoints",
        "tokenizer: fast, max_tokens=1024",
    ],
)
def test_ids_hashes_and_paths_stay_readable(text: str) -> None:
    assert mask_secrets(text) == text


def test_url_keeps_user_and_host() -> None:
    assert mask_secrets(f"http://user:{PASSWORD}@host:5000/x") == "http://user:***@host:5000/x"


def test_mask_obj_recurses_and_masks_secret_named_fields() -> None:
    obj = {
        "password": "hunter2",
        "run_id": RUN_ID,
        "config_hash": SHA256,
        "nested": {"urls": [f"http://u:{PASSWORD}@h/"], "pair": (HF, 3)},
        "n": 3,
        "none": None,
    }
    masked = mask_obj(obj)
    assert masked["password"] == MASK
    assert masked["run_id"] == RUN_ID
    assert masked["config_hash"] == SHA256
    assert PASSWORD not in str(masked) and HF not in str(masked)
    assert masked["n"] == 3 and masked["none"] is None
    assert obj["password"] == "hunter2"  # a copy: the input is untouched


def test_filter_masks_message_args_exception_and_extra() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "token %s", (HF,), None)
    try:
        raise RuntimeError(f"login {EMAIL} failed")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    record.url = f"http://u:{PASSWORD}@h/"
    assert MaskingFilter().filter(record)
    rendered = logging.Formatter().format(record)
    for secret in (HF, EMAIL, PASSWORD):
        assert secret not in rendered
        assert secret not in str(record.__dict__)
    assert "RuntimeError" in rendered


AWS_LIKE = "AKIAIOSFODNN7EXAMPLE"  # upper case and digits only: no value pattern catches it


@pytest.mark.parametrize(
    "name",
    ["api_key", "hub.apiKey", "hf_token", "AWS_SECRET_ACCESS_KEY", "db_password", "credentials",
     "gcp.credential_file", "client_secret", "passphrase"],
)  # fmt: skip
def test_values_under_secret_looking_names_are_masked_whole(name: str) -> None:
    from mental_health_hpo.ops.masking import is_secret_name, mask_named

    assert is_secret_name(name)
    assert mask_named(name, AWS_LIKE) == MASK
    assert mask_obj({"outer": {name: AWS_LIKE}}) == {"outer": {name: MASK}}


@pytest.mark.parametrize(
    "name",
    ["token_env", "max_answer_tokens", "tokenizer", "run_id", "config_hash", "study_id",
     "mlflow.parentRunId", "encoder", "sort_keys", "key_id"],
)  # fmt: skip
def test_names_that_only_look_alike_keep_their_values(name: str) -> None:
    from mental_health_hpo.ops.masking import is_secret_name, mask_named

    assert not is_secret_name(name)
    assert mask_named(name, "HF_TOKEN") == "HF_TOKEN"
    assert mask_named("api_key", 3) == 3  # numbers pass through
