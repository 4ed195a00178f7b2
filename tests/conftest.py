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
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.devstack import Endpoints

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
