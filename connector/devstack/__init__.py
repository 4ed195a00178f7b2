"""Local Apache Kafka (KRaft), Apicurio schema registry, S3Proxy and Redis for dev and tests.

The JVMs are fetched from Maven Central with `mvn` into a shared cache, Redis is Debian's
`redis-server` (apt-get installs it when missing and we are root); all run detached on loopback
ports; `python -m connector.devstack up|down|status|fetch`.
"""

from connector.devstack.cli import main
from connector.devstack.fetching import default_cache, fetch
from connector.devstack.stack import (
    Endpoints,
    default_home,
    down,
    start_kafka,
    start_redis,
    start_s3,
    status,
    stop_kafka,
    stop_redis,
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
    "start_redis",
    "start_s3",
    "status",
    "stop_kafka",
    "stop_redis",
    "stop_s3",
    "up",
]
