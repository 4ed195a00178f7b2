"""`python -m connector.devstack up|down|status|fetch`."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from connector.devstack.fetching import fetch
from connector.devstack.stack import Endpoints, down, status, up


def endpoint_lines(endpoints: Endpoints) -> list[str]:
    """`NAME=value` shell assignments for every endpoint the stack has."""
    values = {
        "KAFKA_BOOTSTRAP_SERVERS": endpoints.bootstrap_servers,
        "SCHEMA_REGISTRY_URL": endpoints.registry_url,
        "S3_ENDPOINT_URL": endpoints.s3_endpoint_url,
        "S3_BUCKET": endpoints.s3_bucket,
        # The local S3Proxy's fixed loopback-only credentials (devstack/s3proxy.py), printed
        # so `eval` hands them to a client; no real secret ever reaches these fields.
        "S3_ACCESS_KEY_ID": endpoints.s3_access_key_id,
        "S3_SECRET_ACCESS_KEY": endpoints.s3_secret_access_key,
        # Carries the local Redis's fixed loopback-only password (devstack/redis_server.py).
        "REDIS_URL": endpoints.redis_url,
    }
    return [f"{name}={shlex.quote(value)}" for name, value in values.items() if value is not None]


def _print_endpoints(endpoints: Endpoints) -> None:
    # Only these lines go to stdout, so `eval "$(... up)"` works; logs go to stderr.
    for line in endpoint_lines(endpoints):
        print(line)


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m connector.devstack") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Local single-node Kafka, Apicurio registry (Confluent API), S3Proxy, Redis.",
    )
    parser.add_argument(
        "--home",
        type=Path,
        help="state, logs and Kafka data (default: $MMS_DEVSTACK_HOME or <repo>/.devstack)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start (if needed) and print the endpoints")
    up_parser.add_argument("--timeout", type=float, default=180, help="seconds (default 180)")
    commands.add_parser("down", help="stop every service")
    commands.add_parser("status", help="print the endpoints; exit 1 if not running")
    fetch_parser = commands.add_parser("fetch", help="only download into the cache")
    fetch_parser.add_argument(
        "--cache", type=Path, help="default: $MMS_DEVSTACK_CACHE or ~/.cache/mms-connector/devstack"
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="devstack: %(message)s", stream=sys.stderr)
    try:
        if args.command == "up":
            _print_endpoints(up(args.home, timeout=args.timeout))
        elif args.command == "down":
            down(args.home)
        elif args.command == "status":
            endpoints = status(args.home)
            if endpoints is None:
                print("devstack: not running", file=sys.stderr)
                return 1
            _print_endpoints(endpoints)
        else:
            fetch(args.cache)
    except RuntimeError as error:
        print(f"devstack: {error}", file=sys.stderr)
        return 1
    return 0
