"""What the benchmarks run against: the local stack (connector/devstack: Kafka, the registry,
S3Proxy, Redis), its topics, S3 bucket and shared duplicate window, and the connector under test
(`mms-connector serve` with a generated config enabling every provider bench/payloads.py has
callbacks for; one process, or a supervisor and `server.workers` worker processes)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bench import payloads
from bench.paths import MMS_CONNECTOR
from bench.processes import free_port, server, wait_http

# --- the stack -------------------------------------------------------------------------------


@contextlib.contextmanager
def running(home: Path, keep: bool) -> Iterator[Any]:
    """The devstack in `home`, up; its endpoints; down at the end unless `keep`."""
    from connector import devstack

    endpoints = devstack.up(home)
    try:
        yield endpoints
    finally:
        if not keep:
            devstack.down(home)


def stack_pids(home: Path) -> dict[str, int]:
    """The broker's, S3Proxy's and Redis's process ids (0: not running), for their CPU beside a
    figure."""
    state = json.loads((home / "state.json").read_text())
    return {
        "broker": state.get("kafka_pid") or 0,
        "s3": state.get("s3_pid") or 0,
        "redis": state.get("redis_pid") or 0,
    }


def create_topics(bootstrap: str, topics: list[str], partitions: int = 3) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
    for future in futures.values():
        future.result(30)


# The server's environment carries the S3 keys; its config names the variables ({env: VAR}).
S3_KEY_VAR, S3_SECRET_VAR = "MMS_BENCH_S3_ACCESS_KEY_ID", "MMS_BENCH_S3_SECRET_ACCESS_KEY"


def s3_media(endpoints: Any, prefix: str) -> tuple[dict[str, Any], dict[str, str]]:
    """`media` settings for the stack's S3Proxy under `prefix`, and the environment they need."""
    s3: dict[str, Any] = {
        "bucket": endpoints.s3_bucket,
        "endpoint_url": endpoints.s3_endpoint_url,
        "prefix": prefix,
    }
    env: dict[str, str] = {}
    if endpoints.s3_access_key_id and endpoints.s3_secret_access_key:
        s3 |= {"access_key_id": {"env": S3_KEY_VAR}, "secret_access_key": {"env": S3_SECRET_VAR}}
        env = {
            S3_KEY_VAR: endpoints.s3_access_key_id,
            S3_SECRET_VAR: endpoints.s3_secret_access_key,
        }
    return {"store": "s3", "s3": s3}, env


def s3_store(endpoints: Any, prefix: str) -> Any:
    """An obstore S3Store on the stack's bucket with the connector's own client settings."""
    from obstore.store import S3Store

    from connector.config import MediaConfig
    from connector.media import s3_options

    settings, env = s3_media(endpoints, prefix)
    config = MediaConfig.model_validate(settings).s3
    return S3Store(config.bucket, **s3_options(config, env))


def s3_delete_prefix(stack_home: Path, bucket: str, prefix: str) -> None:
    """Remove what a run put under `prefix` (S3Proxy keeps it on disk, gigabytes per run).

    From the stack's filesystem backend directly: obstore deletes only by the multi-object
    POST ?delete, which S3Proxy 2.9.0 answers 501 NotImplemented.
    """
    shutil.rmtree(stack_home / "s3" / "data" / bucket / prefix, ignore_errors=True)


# The server's environment carries the Redis password; its config names the variable (the
# connector refuses credentials in dedupe.shared.url).
REDIS_PASSWORD_VAR = "MMS_BENCH_REDIS_PASSWORD"
# How long the shared window remembers a published id (the connector's default: 86,400 s). The
# cost of a claim does not depend on it; a short one keeps a shared stack's Redis small.
SHARED_PUBLISHED_TTL_S = 900


def shared_window(endpoints: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """`dedupe.shared` settings for the stack's Redis, and the environment they need."""
    if not endpoints.redis_url:
        raise SystemExit(
            "the shared duplicate window needs the stack's Redis (connector/devstack), "
            "which this stack does not run"
        )
    parts = urlsplit(endpoints.redis_url)
    shared: dict[str, Any] = {
        "url": f"{parts.scheme}://{parts.hostname}:{parts.port}{parts.path}",
        "published_ttl_seconds": SHARED_PUBLISHED_TTL_S,
    }
    env: dict[str, str] = {}
    if parts.password:
        shared["password"] = {"env": REDIS_PASSWORD_VAR}
        env = {REDIS_PASSWORD_VAR: parts.password}
    return shared, env


# --- the connector ---------------------------------------------------------------------------


def connector_config(
    path: Path,
    endpoints: Any,
    port: int,
    topic: str,
    media: Path | dict[str, Any],
    *,
    max_in_flight: int = 0,
    dedupe_max_entries: int = 0,
    workers: int = 1,
    shared: dict[str, Any] | None = None,
) -> None:
    """The connector's config file; `media` a filesystem store's root or `media` settings;
    0 for max_in_flight or dedupe_max_entries: the connector's own default; `workers` its
    `server.workers` (1, the default, is left out); `shared` its `dedupe.shared`."""
    providers = {
        name: {"enabled": True, "topic": topic, "deadline_seconds": 8}
        | payloads.provider_settings(name)
        for name in payloads.PATHS
    }
    config: dict[str, Any] = {
        "kafka": {"bootstrap_servers": endpoints.bootstrap_servers, "flush_timeout_seconds": 30},
        "schema_registry": {"url": endpoints.registry_url, "compatibility": "BACKWARD_TRANSITIVE"},
        "server": {"host": "127.0.0.1", "port": port},
        "media": media if isinstance(media, dict) else {"root": str(media)},
        "dead_letters": {"topic": f"{topic}.dlq"},
        "providers": providers,
    }
    if max_in_flight:
        config["server"]["max_in_flight"] = max_in_flight
    if workers != 1:
        config["server"]["workers"] = workers
    if dedupe_max_entries:
        config.setdefault("dedupe", {})["max_entries"] = dedupe_max_entries
    if shared:
        config.setdefault("dedupe", {})["shared"] = shared
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@contextlib.contextmanager
def serve_connector(
    workdir: Path,
    name: str,
    endpoints: Any,
    topic: str,
    media: Path | dict[str, Any],
    env: dict[str, str] | None = None,
    **settings: Any,
) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    """`mms-connector serve` on a free port with `connector_config` (workdir/<name>.yaml, its
    log workdir/<name>.log, `env` added to this environment), answering /healthz (with
    `workers` > 1: every worker started); yields the port, the process (the supervisor, with
    workers) and the log; stopped at the end."""
    port = free_port()
    cfg = workdir / f"{name}.yaml"
    connector_config(cfg, endpoints, port, topic, media, **settings)
    log = workdir / f"{name}.log"
    cmd = [MMS_CONNECTOR, "serve", "--config", str(cfg)]
    with server(cmd, log, env={**os.environ, **(env or {})}) as proc:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        wait_workers(proc, log, settings.get("workers", 1))
        yield port, proc, log


# uvicorn's line once a worker's lifespan start-up (schemas, window, producer) has finished
# and it accepts on the shared socket.
STARTED = b"Application startup complete."


def wait_workers(
    proc: subprocess.Popen[bytes], log: Path, workers: int, timeout: float = 120
) -> None:
    """Until each of `workers` workers has logged its start-up (/healthz answered by one worker
    says nothing of the others; the kernel hands connections to those accepting)."""
    if workers <= 1:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before serving")
        if log.read_bytes().count(STARTED) >= workers:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{workers} workers did not all start within {timeout} s (see {log})")


def encoder(
    registry_url: str, topic: str, providers: dict[str, dict[str, Any]], media_root: Path | None
) -> tuple[dict[str, Any], Any]:
    """The connector's own routes (by provider name) and codec, its schema registered for
    `topic`: records made outside the server exactly as the server makes them."""
    from connector import pipeline
    from connector.codec import Codec, registry_client
    from connector.config import Config

    raw: dict[str, Any] = {"schema_registry": {"url": registry_url}, "providers": providers}
    if media_root is not None:
        raw["media"] = {"root": str(media_root)}
    routes = {r.name: r for r in pipeline.routes(Config.model_validate(raw))}
    codec = Codec(registry_client(registry_url), "BACKWARD_TRANSITIVE")
    codec.register(topic)
    return routes, codec
