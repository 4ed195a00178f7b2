"""Session fixtures for the real Kafka broker and schema registry.

Where they come from, in order:
1. External endpoints: MMS_TEST_KAFKA_BOOTSTRAP_SERVERS and MMS_TEST_SCHEMA_REGISTRY_URL.
2. The project's local stack (Kafka and Apicurio from Maven Central), started here if it is not
   already up and stopped at the end if this session started it.
3. Testcontainers, when a Docker engine answers and Java/Maven are missing.
"""

from __future__ import annotations

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

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def stack_home() -> Path:
    # Tests get their own stack home so restarting the broker never disturbs a `dev` session.
    return Path(os.environ.get("MMS_TEST_DEVSTACK_HOME", REPO / ".devstack" / "test"))


@pytest.fixture(scope="session")
def endpoints(stack_home: Path) -> Iterator[Endpoints]:
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

    with (
        KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka,
        DockerContainer("apicurio/apicurio-registry:3.3.3").with_exposed_ports(8080) as registry,
    ):
        wait_for_logs(registry, "started in", timeout=120)
        url = (
            f"http://{registry.get_container_host_ip()}:"
            f"{registry.get_exposed_port(8080)}/apis/ccompat/v7"
        )
        yield Endpoints(kafka.get_bootstrap_server(), url)


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
