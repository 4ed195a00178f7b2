"""Session fixtures for the real Kafka broker, schema registry, S3 server and Redis.

Where they come from, in order:
1. External endpoints: MMS_TEST_KAFKA_BOOTSTRAP_SERVERS and MMS_TEST_SCHEMA_REGISTRY_URL;
   for S3, MMS_TEST_S3_ENDPOINT_URL (with _ACCESS_KEY_ID, _SECRET_ACCESS_KEY, _BUCKET); for
   Redis, MMS_TEST_REDIS_URL (redis://[:password@]host:port/db; it wins over 2. and 3. too).
2. The project's local stack (Kafka, Apicurio and S3Proxy from Maven Central, Debian's
   redis-server), started here if it is not already up and stopped at the end if this session
   started it.
3. Testcontainers, when a Docker engine answers and Java/Maven are missing.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.config import Config
from connector.devstack import Endpoints
from tests.live import Record, config_for, read_topic
from tests.media_host import MediaServer, serving
from tests.tools import obtain_helm

REPO = Path(__file__).resolve().parents[1]
# One bucket for every test; each test isolates its objects by a unique key prefix.
S3_TEST_BUCKET = "mms-test"


@pytest.fixture(scope="session")
def helm() -> Path:
    """A helm binary (tests/tools.py): the chart's, cluster and image suites use it."""
    return obtain_helm()


@pytest.fixture(scope="session")
def stack_home() -> Path:
    # Tests get their own stack home so restarting the broker never disturbs a `dev` session.
    return Path(os.environ.get("MMS_TEST_DEVSTACK_HOME", REPO / ".devstack" / "test"))


@pytest.fixture(scope="session")
def endpoints(stack_home: Path) -> Iterator[Endpoints]:
    for found in _endpoints(stack_home):
        if redis_url := os.environ.get("MMS_TEST_REDIS_URL"):
            found = dataclasses.replace(found, redis_url=redis_url)
        yield found


def _endpoints(stack_home: Path) -> Iterator[Endpoints]:
    bootstrap = os.environ.get("MMS_TEST_KAFKA_BOOTSTRAP_SERVERS")
    registry = os.environ.get("MMS_TEST_SCHEMA_REGISTRY_URL")
    if bootstrap and registry:
        yield Endpoints(bootstrap, registry)
    elif shutil.which("java") and shutil.which("mvn"):
        yield from _local_stack(stack_home)
    elif _docker_answers():
        yield from _containers()
    else:
        pytest.skip("no Kafka: set MMS_TEST_* endpoints, install Java+Maven, or run Docker")


def _local_stack(home: Path) -> Iterator[Endpoints]:
    from connector import devstack

    already_up = devstack.status(home) is not None
    endpoints = devstack.up(home)
    try:
        yield endpoints
    finally:
        if not already_up and not os.environ.get("MMS_TEST_KEEP_STACK"):
            devstack.down(home)


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env().ping()
    except Exception:
        return False
    return True


def _containers() -> Iterator[Endpoints]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.kafka import KafkaContainer

    from connector.devstack import redis_server, s3proxy

    # The same S3Proxy release as the local stack; its image defaults to the filesystem
    # backend under /data (a bucket is a directory) on port 80.
    s3_image = DockerContainer("andrewgaul/s3proxy:s3proxy-2.9.0").with_exposed_ports(80)
    s3_image = s3_image.with_env("S3PROXY_AUTHORIZATION", "aws-v2-or-v4")
    s3_image = s3_image.with_env("S3PROXY_IDENTITY", s3proxy.ACCESS_KEY_ID)
    s3_image = s3_image.with_env("S3PROXY_CREDENTIAL", s3proxy.SECRET_ACCESS_KEY)
    # Valkey 8 (the BSD-licensed Redis fork) speaks the protocol the connector uses; configured
    # as the local stack's redis-server is: its password, nothing kept on disk.
    valkey_image = DockerContainer("valkey/valkey:8").with_exposed_ports(6379)
    valkey_args = ["--requirepass", redis_server.PASSWORD, "--save", "", "--appendonly", "no"]
    valkey_image = valkey_image.with_command(["valkey-server", *valkey_args])
    with (
        KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka,
        DockerContainer("apicurio/apicurio-registry:3.3.3").with_exposed_ports(8080) as registry,
        s3_image as s3_server,
        valkey_image as valkey,
    ):
        wait_for_logs(registry, "started in", timeout=120)
        wait_for_logs(s3_server, "Started Server", timeout=60)
        wait_for_logs(valkey, "Ready to accept connections", timeout=60)
        s3_server.exec(["mkdir", "-p", *(f"/data/{bucket}" for bucket in s3proxy.BUCKETS)])
        url = (
            f"http://{registry.get_container_host_ip()}:"
            f"{registry.get_exposed_port(8080)}/apis/ccompat/v7"
        )
        yield Endpoints(
            kafka.get_bootstrap_server(),
            url,
            s3_endpoint_url=(
                f"http://{s3_server.get_container_host_ip()}:{s3_server.get_exposed_port(80)}"
            ),
            s3_access_key_id=s3proxy.ACCESS_KEY_ID,
            s3_secret_access_key=s3proxy.SECRET_ACCESS_KEY,
            s3_bucket=s3proxy.DEV_BUCKET,
            redis_url=redis_server.url(
                valkey.get_container_host_ip(), int(valkey.get_exposed_port(6379))
            ),
        )


@pytest.fixture(scope="session")
def s3(endpoints: Endpoints) -> Endpoints:
    """`endpoints` whose s3_* fields name the tests' S3 server and the bucket `mms-test`.

    MMS_TEST_S3_ENDPOINT_URL (with MMS_TEST_S3_ACCESS_KEY_ID, MMS_TEST_S3_SECRET_ACCESS_KEY,
    MMS_TEST_S3_BUCKET) names an external server; else the local stack's S3Proxy (or the
    container's). Keys absent from the environment: None (the client's default chain).
    """
    if url := os.environ.get("MMS_TEST_S3_ENDPOINT_URL"):
        return dataclasses.replace(
            endpoints,
            s3_endpoint_url=url,
            s3_access_key_id=os.environ.get("MMS_TEST_S3_ACCESS_KEY_ID"),
            s3_secret_access_key=os.environ.get("MMS_TEST_S3_SECRET_ACCESS_KEY"),
            s3_bucket=os.environ.get("MMS_TEST_S3_BUCKET", S3_TEST_BUCKET),
        )
    if endpoints.s3_endpoint_url is None:
        pytest.skip("no S3 server: set MMS_TEST_S3_ENDPOINT_URL or use the local stack")
    return dataclasses.replace(endpoints, s3_bucket=S3_TEST_BUCKET)


@pytest.fixture(scope="session")
def redis_url(endpoints: Endpoints) -> str:
    """The tests' Redis: MMS_TEST_REDIS_URL, else the local stack's redis-server (or Valkey's
    container). Tests share its database 0 and isolate by a unique key prefix."""
    if endpoints.redis_url is None:
        pytest.skip("no Redis: set MMS_TEST_REDIS_URL, or use the local stack (redis-server)")
    return endpoints.redis_url


@pytest.fixture
def topic() -> str:
    return f"mms.test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def dlq_topic() -> str:
    return f"mms.test.dlq.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_config(endpoints: Endpoints, tmp_path: Path, dlq_topic: str) -> Callable[..., Config]:
    """Config on the shared test stack, with this test's own dead-letter topic."""

    def make(providers: dict[str, dict[str, Any]], **top: Any) -> Config:
        top.setdefault("dead_letters", {"topic": dlq_topic})
        return config_for(endpoints, tmp_path / "media", providers, **top)

    return make


@pytest.fixture
def records(endpoints: Endpoints) -> Callable[[str], list[Record]]:
    return lambda topic: read_topic(endpoints, topic)


@pytest.fixture
def media_host() -> Iterator[MediaServer]:
    """A provider's media host stand-in on loopback (tests/media_host.py)."""
    with serving(MediaServer()) as server:
        yield server
