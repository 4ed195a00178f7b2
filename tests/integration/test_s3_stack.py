"""The tests' S3 server is a real one: SigV4-signed requests round-trip, bad signatures fail."""

from __future__ import annotations

import hashlib
import uuid

import httpx
import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from connector.devstack import Endpoints, s3proxy

pytestmark = pytest.mark.integration


def _signed(
    s3: Endpoints,
    method: str,
    key: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    secret: str | None = None,
) -> httpx.Request:
    """A path-style request to `key` in the test bucket, signed with AWS signature v4."""
    assert s3.s3_endpoint_url and s3.s3_access_key_id
    credentials = Credentials(s3.s3_access_key_id, secret or s3.s3_secret_access_key)
    url = f"{s3.s3_endpoint_url}/{s3.s3_bucket}/{key}"
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    request.headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    S3SigV4Auth(credentials, "s3", s3proxy.REGION).add_auth(request)
    return httpx.Request(method, url, content=body, headers=dict(request.headers.items()))


@pytest.fixture
def key() -> str:
    return f"test-s3-stack/{uuid.uuid4().hex}/object.bin"


def test_signed_put_then_get_returns_the_bytes(s3: Endpoints, key: str) -> None:
    body = bytes(range(256)) * 1000  # binary, 256 KB: the size of a large MMS image
    with httpx.Client(timeout=30) as client:
        put = client.send(_signed(s3, "PUT", key, body, {"Content-Type": "image/png"}))
        assert put.status_code == 200, put.text
        got = client.send(_signed(s3, "GET", key))
        head = client.send(_signed(s3, "HEAD", key))
    assert got.status_code == 200, got.text
    assert got.content == body
    assert got.headers["content-type"] == "image/png"
    assert head.headers["content-length"] == str(len(body))


def test_wrong_secret_is_refused(s3: Endpoints, key: str) -> None:
    with httpx.Client(timeout=30) as client:
        put = client.send(_signed(s3, "PUT", key, b"x", secret="not-the-secret"))
        missing = client.send(_signed(s3, "GET", key))
    assert put.status_code == 403
    assert b"SignatureDoesNotMatch" in put.content or b"AccessDenied" in put.content
    assert missing.status_code == 404


def test_presigned_get_needs_no_credentials(s3: Endpoints, key: str) -> None:
    assert s3.s3_access_key_id
    with httpx.Client(timeout=30) as client:
        assert client.send(_signed(s3, "PUT", key, b"presigned")).status_code == 200
        credentials = Credentials(s3.s3_access_key_id, s3.s3_secret_access_key)
        url = f"{s3.s3_endpoint_url}/{s3.s3_bucket}/{key}"
        request = AWSRequest(method="GET", url=url)
        S3SigV4QueryAuth(credentials, "s3", s3proxy.REGION, expires=60).add_auth(request)
        got = client.get(request.url)
    assert got.status_code == 200, got.text
    assert got.content == b"presigned"
