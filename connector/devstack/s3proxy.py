"""S3Proxy, the devstack's S3 server: its configuration and how to tell that it answers.

S3Proxy (Apache-2.0, org.gaul:s3proxy on Maven Central) runs on Java 17, which the devstack
already needs for Kafka; with jclouds' `filesystem` backend a bucket is a directory under the
stack home and an object a file, so buckets are made with mkdir before the server starts.
It speaks the S3 REST API with AWS signature v2 and v4 (presigned URLs included), which is what
the connector's store and its tests need from a real server.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

# Fixed, public, local-only credentials: the server listens on loopback only and holds test
# data. They are printed by `devstack status` on purpose; never use them anywhere else.
ACCESS_KEY_ID = "local-identity"
SECRET_ACCESS_KEY = "local-credential"
# `mms-media` for `mms-connector dev`; `mms-test` for the tests (they isolate by key prefix).
BUCKETS = ("mms-media", "mms-test")
DEV_BUCKET = BUCKETS[0]
# What clients sign with; S3Proxy checks the signature in whichever region the request names.
REGION = "us-east-1"


def render_properties(host: str, port: int, basedir: Path) -> str:
    """S3Proxy's --properties file: loopback endpoint, v2/v4 auth, filesystem backend."""
    settings = {
        "s3proxy.endpoint": f"http://{host}:{port}",
        "s3proxy.authorization": "aws-v2-or-v4",
        "s3proxy.identity": ACCESS_KEY_ID,
        "s3proxy.credential": SECRET_ACCESS_KEY,
        "jclouds.provider": "filesystem",
        # The backend's own login; the filesystem provider requires one and ignores it.
        "jclouds.identity": "unused",
        "jclouds.credential": "unused",
        "jclouds.filesystem.basedir": str(basedir),
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def make_buckets(basedir: Path) -> None:
    for bucket in BUCKETS:
        (basedir / bucket).mkdir(parents=True, exist_ok=True)


def answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """True once the S3 API answers: an unsigned request is refused with an S3 error document."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=timeout) as response:
            return bool(response.status)
    except urllib.error.HTTPError as error:
        # 403 AccessDenied to an anonymous request: Jetty is up and S3Proxy handles requests.
        return b"<Error>" in error.read()
    except OSError:  # refused, reset, timed out
        return False
