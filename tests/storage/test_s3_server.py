"""The test S3 server is a real S3 API with the one guarantee the object-store backend relies on:
a conditional create (``If-None-Match: *``) is refused with 412 when the key exists."""

from __future__ import annotations

import botocore.exceptions
import pytest
import s3fs


def test_conditional_create_is_refused_on_an_existing_key(s3_url: str) -> None:
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    key = f"{s3_url}/study/manifest.json"

    fs.pipe(key, b"first", mode="create")
    with pytest.raises(OSError) as refused:
        fs.pipe(key, b"second", mode="create")

    cause = refused.value.__cause__
    assert isinstance(cause, botocore.exceptions.ClientError)
    assert cause.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert fs.cat(key) == b"first"
    # The refusal is the precondition's, not the server's: a plain overwrite goes through.
    fs.pipe(key, b"third")
    assert fs.cat(key) == b"third"


def test_a_fresh_prefix_is_empty_and_keys_list_back(s3_url: str) -> None:
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    assert not fs.exists(s3_url)
    fs.pipe({f"{s3_url}/a/1": b"x", f"{s3_url}/a/2": b"yy"})
    assert sorted(fs.find(s3_url)) == [f"{s3_url[5:]}/a/1", f"{s3_url[5:]}/a/2"]
