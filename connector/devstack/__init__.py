"""Local Apache Kafka (KRaft), Apicurio schema registry and S3Proxy for development and tests.

Fetched from Maven Central with `mvn` into a shared cache, run as detached JVMs on
loopback ports; `python -m connector.devstack up|down|status|fetch`.
"""

from connector.devstack.cli import main
from connector.devstack.fetching import default_cache, fetch
from connector.devstack.stack import (
    Endpoints,
    default_home,
    down,
    start_kafka,
    start_s3,
    status,
    stop_kafka,
    stop_s3,
    up,
)

__all__ = [
    "Endpoints",
    "default_cache",
    "default_home",
    "down",
    "fetch",
    "main",
    "start_kafka",
    "start_s3",
    "status",
    "stop_kafka",
    "stop_s3",
    "up",
]
