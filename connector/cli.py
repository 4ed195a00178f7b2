"""mms-connector: serve, dev, translate, tail, check-config, dlq, media, mirror, devstack."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from connector import config as config_mod
from connector import logs, pipeline, workers
from connector.codec import avro_deserializer, registry_client
from connector.providers.contract import Callback, Refusal

REPO = Path(__file__).resolve().parents[1]
ENV = os.environ
DEV_CONFIG = REPO / "config" / "dev.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mms-connector", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP connector")
    serve.add_argument("--config", type=Path, required=True)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    # A worker of `server.workers` (connector/workers.py): the listening socket it inherits.
    serve.add_argument("--worker-socket-fd", type=int, help=argparse.SUPPRESS)

    dev = sub.add_parser("dev", help="start local Kafka + registry and run the connector on them")
    dev.add_argument("--config", type=Path, default=DEV_CONFIG)
    dev.add_argument("--port", type=int, default=8080)

    tr = sub.add_parser("translate", help="print what a callback body would publish")
    tr.add_argument("--config", type=Path)
    tr.add_argument("--provider", required=True)
    tr.add_argument("--content-type", default="")
    tr.add_argument("--header", action="append", default=[], metavar="'K: V'")
    tr.add_argument("file", nargs="?", default="-")

    tail = sub.add_parser("tail", help="print a topic's records decoded through the registry")
    tail.add_argument("--topic", required=True)
    tail.add_argument("--config", type=Path)
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--max", type=int, help="stop after this many records")
    tail.add_argument("--idle-timeout", type=float, help="stop after this long without records")

    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("file", type=Path)

    dlq = sub.add_parser("dlq", help="dead letters: list them, or replay them through the parsers")
    dlq.add_argument("action", choices=["list", "replay"])
    dlq.add_argument("--config", type=Path, required=True)

    media = sub.add_parser("media", help="media store objects: get one by its record URI")
    media.add_argument("action", choices=["get"])
    media.add_argument("uri", help="a record's media uri (s3://bucket/key or file:///path)")
    media.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    media.add_argument(
        "--config",
        type=Path,
        help="the connector's config (its store and credentials); default: the URI's own store "
        "with the default credential chain and MMS_S3_ENDPOINT_URL",
    )

    mirror = sub.add_parser(
        "mirror", help="consume the events topics, fetch provider-hosted media, write mirror.topic"
    )
    mirror.add_argument("--config", type=Path, required=True)
    mirror.add_argument("--host", default="0.0.0.0", help="for /healthz, /readyz, /metrics")
    mirror.add_argument("--port", type=int, default=8081)

    devstack = sub.add_parser("devstack", help="local Kafka + registry: up, down, status, fetch")
    devstack.add_argument("action", choices=["up", "down", "status", "fetch"])

    args = parser.parse_args(argv)
    # The service logs JSON lines for log pipelines; the tools log for people.
    logs.configure(json=args.command in ("serve", "dev", "mirror"))
    try:
        return COMMANDS[args.command](args)
    except config_mod.ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace) -> int:
    config = config_mod.load(args.config)
    host, port = args.host or config.server.host, args.port or config.server.port
    if args.worker_socket_fd is not None:
        _run(config, host, port, workers.inherited_socket(args.worker_socket_fd))
    elif config.server.workers > 1:
        return workers.supervise(args.config, host, port, config.server.workers)
    else:
        _run(config, host, port)
    return 0


def _run(
    config: config_mod.Config, host: str, port: int, sock: socket.socket | None = None
) -> None:
    import signal

    import uvicorn

    from connector.server import tune_memory, uvicorn_config

    # After its graceful shutdown uvicorn raises the SIGTERM it caught again, with this handler
    # restored: without it the default action kills the process (status 143) though it stopped
    # cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = uvicorn.Server(uvicorn_config(config, host, port))
    tune_memory()
    server.run(sockets=[sock] if sock else None)


def _dev(args: argparse.Namespace) -> int:
    from connector import devstack

    endpoints = devstack.up()
    stack = {
        "MMS_KAFKA_BOOTSTRAP_SERVERS": endpoints.bootstrap_servers,
        "MMS_SCHEMA_REGISTRY_URL": endpoints.registry_url,
    }
    if endpoints.s3_endpoint_url:
        s3 = {
            "MMS_S3_ENDPOINT_URL": endpoints.s3_endpoint_url,
            "MMS_S3_ACCESS_KEY_ID": endpoints.s3_access_key_id or "",
            "MMS_S3_SECRET_ACCESS_KEY": endpoints.s3_secret_access_key or "",
        }
        stack.update(s3)
        # config/dev.yaml's store credentials are secrets the app reads from the environment.
        ENV.update(s3)
    if endpoints.redis_url:
        parts = urlsplit(endpoints.redis_url)
        shared = {
            "MMS_SHARED_WINDOW_URL": urlunsplit(
                (parts.scheme, f"{parts.hostname}:{parts.port}", parts.path, "", "")
            ),
            "MMS_SHARED_WINDOW_PASSWORD": parts.password or "",
        }
        stack.update(shared)
        ENV.update(shared)  # config/dev.yaml's dedupe.shared.password reads it
    config = config_mod.load(args.config, stack)
    base = f"http://127.0.0.1:{args.port}"
    routes = pipeline.routes(config)
    if not routes:
        raise config_mod.ConfigError(f"{args.config}: no provider is enabled")
    first = routes[0]
    sample = first.provider.sample
    # The sample ships in the package; curl wants it as a file.
    sample_file = devstack.default_home() / f"sample-{first.name}"
    sample_file.write_bytes(sample.body)
    print(
        f"""
Kafka: {endpoints.bootstrap_servers}   registry: {endpoints.registry_url}
S3: {endpoints.s3_endpoint_url} (bucket {endpoints.s3_bucket})
Callback endpoints:"""
        + "".join(f"\n  {base}{r.path}" for r in routes)
        + f"""

Send {first.name} {sample.description}:
  curl -s -X POST -H 'Content-Type: {sample.content_type}' --data-binary @{sample_file} \\
       {base}{first.path}
See what consumers see (another terminal):
  MMS_KAFKA_BOOTSTRAP_SERVERS={endpoints.bootstrap_servers} \\
  MMS_SCHEMA_REGISTRY_URL={endpoints.registry_url} \\
  .venv/bin/mms-connector tail --topic {first.settings.topic} --from-beginning
Fetch a record's media by its uri (the local stack's fixed, local-only credentials):
  MMS_S3_ENDPOINT_URL={endpoints.s3_endpoint_url} \\
  MMS_S3_ACCESS_KEY_ID={endpoints.s3_access_key_id} \\
  MMS_S3_SECRET_ACCESS_KEY={endpoints.s3_secret_access_key} \\
  .venv/bin/mms-connector media get URI --config {args.config} -o FILE
Stop the local Kafka and registry afterwards: .venv/bin/mms-connector devstack down
""",
        flush=True,
    )
    _run(config, "127.0.0.1", args.port)
    return 0


def _translate(args: argparse.Namespace) -> int:
    config = config_mod.load(args.config) if args.config else config_mod.for_provider(args.provider)
    route = next((r for r in pipeline.routes(config) if r.name == args.provider), None)
    if route is None:
        raise config_mod.ConfigError(f"provider {args.provider!r} is not enabled in the config")
    try:
        body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"{args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    headers = {}
    for line in args.header:
        name, sep, value = line.partition(":")
        if not sep:
            raise config_mod.ConfigError(f"--header {line!r}: expected 'Name: value'")
        headers[name.strip().lower()] = value.strip()
    if args.content_type:
        headers["content-type"] = args.content_type
    callback = Callback(body, headers, datetime.now(UTC), headers.get("content-type", ""))
    try:
        encoded = pipeline.translate(route, callback)
    except Refusal as refusal:
        reply = route.provider.refused(refusal)
        sys.stderr.write(f"{reply.status} {reply.body.decode(errors='replace')}\n")
        return 1
    for o in encoded:
        _print_json({"topic": o.topic, "key": o.key, "headers": o.headers, "value": o.value()})
    return 0


def _tail(args: argparse.Namespace) -> int:
    from connector.consumer import follow

    config = config_mod.load(args.config)
    deserializer = avro_deserializer(registry_client(config.schema_registry.client_settings(ENV)))
    messages = follow(
        config.kafka.client_settings(ENV),
        args.topic,
        from_beginning=args.from_beginning,
        idle_timeout=args.idle_timeout,
    )
    with contextlib.suppress(KeyboardInterrupt):
        for seen, msg in enumerate(messages, start=1):
            _print_json({**_metadata(msg), "value": _decode(deserializer, msg)})
            if args.max is not None and seen >= args.max:
                break
    return 0


def _dlq(args: argparse.Namespace) -> int:
    from connector.consumer import read_until_end

    config = config_mod.load(args.config)
    deserializer = avro_deserializer(registry_client(config.schema_registry.client_settings(ENV)))
    routes = {r.name: r for r in pipeline.routes(config)}
    letters = read_until_end(config.kafka.client_settings(ENV), config.dead_letters.topic)
    if args.action == "list":
        for msg in letters:
            letter = _decode(deserializer, msg)
            body: bytes = letter.pop("body")
            _print_json({**_metadata(msg), "value": {**letter, "body_bytes": len(body)}})
        return 0
    return asyncio.run(_replay(config, routes, letters, deserializer))


async def _replay(
    config: config_mod.Config,
    routes: dict[str, pipeline.Route],
    letters: Iterator[Any],
    deserializer: Any,
) -> int:
    """Publish what now translates; leave the rest where it is (the topic is never rewritten).

    Delivered as the endpoint delivers (connector/delivery.py): an event its topic already
    holds, or another replica published, is not produced again, so a second replay, or two
    dead letters of one retried callback, publish each event once."""
    from connector import dead_letters
    from connector.claims import SharedClaims
    from connector.dedupe import Window
    from connector.delivery import Delivery, NotDelivered, connect

    topics = sorted({r.settings.topic for r in routes.values()})
    window = Window(config.dedupe.window_seconds, config.dedupe.max_entries)
    shared = config.dedupe.shared
    claims = SharedClaims.connect(shared, ENV) if shared is not None else None
    clients, _in_kafka = await asyncio.to_thread(connect, config, ENV, topics, window)
    delivery = Delivery(clients, window, claims)
    counts = dict.fromkeys(
        ("published", "already_published", "still_failing", "body_missing", "provider_not_enabled"),
        0,
    )
    try:
        for msg in letters:
            letter = _decode(deserializer, msg)
            route = routes.get(letter["provider"])
            line = {"offset": msg.offset(), "provider": letter["provider"]}
            if route is None:
                outcome = "provider_not_enabled"
            else:
                try:
                    letter_callback = dead_letters.callback(letter, route.store)
                except (OSError, ValueError) as exc:
                    # Its body is gone from the media store (or no store holds it): say so and
                    # go on with the next letter.
                    counts["body_missing"] += 1
                    _print_json({**line, "outcome": "body_missing", "error": str(exc)})
                    continue
                try:
                    encoded = pipeline.translate(route, letter_callback)
                    deadline = (
                        asyncio.get_running_loop().time() + config.kafka.flush_timeout_seconds
                    )
                    delivered = await delivery.deliver(encoded, deadline)
                except (Refusal, NotDelivered) as exc:
                    outcome, line["error"] = "still_failing", exc.code
                else:
                    outcome = "published" if delivered.produced else "already_published"
                    line["event_ids"] = [e.event.event_id for e in encoded]
            counts[outcome] += 1
            _print_json({**line, "outcome": outcome})
    finally:
        await delivery.close(config.kafka.flush_timeout_seconds)
    print(orjson.dumps({"summary": counts}).decode(), file=sys.stderr)
    return 0


def _metadata(msg: Any) -> dict[str, Any]:
    return {
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "key": (msg.key() or b"").decode(errors="replace"),
        "headers": {k: v.decode(errors="replace") for k, v in msg.headers() or []},
    }


def _decode(deserializer: Any, msg: Any) -> Any:
    from confluent_kafka.serialization import MessageField, SerializationContext

    return deserializer(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))


def _check_config(args: argparse.Namespace) -> int:
    config = config_mod.load(args.file)
    enabled = ", ".join(f"{n} -> {config.route_path(n)}" for n in config.enabled()) or "none"
    for warning in config.warnings():
        print(f"{args.file}: warning: {warning}", file=sys.stderr)
    print(f"{args.file}: OK (providers enabled: {enabled})")
    return 0


def _media(args: argparse.Namespace) -> int:
    from connector.media import open_store

    media = config_mod.load(args.config).media if args.config else _uri_store(args.uri)
    try:
        content = open_store(media, ENV).load(args.uri)
    except (OSError, ValueError) as exc:
        print(f"{args.uri}: {exc}", file=sys.stderr)
        return 1
    if args.output is None:
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
    else:
        args.output.write_bytes(content)
    return 0


def _uri_store(uri: str) -> config_mod.MediaConfig:
    """Without --config: the store the URI names (an s3:// bucket, or the default root)."""
    media = config_mod.load(None, dict(ENV)).media
    if uri.startswith("s3://"):
        bucket = uri.removeprefix("s3://").split("/", 1)[0]
        s3 = media.s3.model_copy(update={"bucket": bucket, "prefix": ""})
        return media.model_copy(update={"store": "s3", "s3": s3})
    return media


def _mirror(args: argparse.Namespace) -> int:
    from connector import mirror

    config = config_mod.load(args.config)
    try:
        mirror.serve(config, ENV, args.host, args.port)
    except mirror.MirrorFailed as exc:
        print(f"mirror stopped: {exc}", file=sys.stderr)
        return 1
    return 0


def _devstack(args: argparse.Namespace) -> int:
    from connector.devstack import main as devstack_main

    return devstack_main([args.action])


def _print_json(obj: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(obj, option=orjson.OPT_UTC_Z) + b"\n")
    sys.stdout.flush()


COMMANDS = {
    "serve": _serve,
    "dev": _dev,
    "translate": _translate,
    "tail": _tail,
    "check-config": _check_config,
    "devstack": _devstack,
    "dlq": _dlq,
    "mirror": _mirror,
    "media": _media,
}

if __name__ == "__main__":
    sys.exit(main())
