"""The peer: a Benthos stream (the engine Redpanda Connect is built on) with only the components
needed, built from the Go module proxy into ~/.cache/mms-connector/bench/ (see peer/main.go).

Redpanda Connect's own module (github.com/redpanda-data/connect/v4, which holds kafka_franz and
schema_registry_encode) is not used: this workplace's package notes mark it not to be used, as
not under an open-source licence. peer/main.go rebuilds the two components on the libraries
they wrap (franz-go, hamba/avro) over the MIT-licensed Benthos core (http_server, mapping).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent / "peer"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mms-connector" / "bench"
BUILD_TIMEOUT_S = 1800


class PeerUnavailable(Exception):
    """The peer could not be built here; the message says why."""


def binary() -> Path:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((HERE / name).read_bytes())
    return CACHE / f"mms-peer-{digest.hexdigest()[:12]}"


def build(log: Path) -> Path:
    """The cached binary, building it first if need be (minutes on 2 cores, once)."""
    target = binary()
    if target.exists():
        return target
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        raise PeerUnavailable("no Go toolchain on PATH")
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    with log.open("w") as out:
        try:
            done = subprocess.run(
                [go, "build", "-trimpath", "-o", str(tmp), "."],
                cwd=HERE,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise PeerUnavailable(f"go build took over {BUILD_TIMEOUT_S} s (log: {log})") from None
    if done.returncode != 0:
        tail = log.read_text()[-2000:]
        raise PeerUnavailable(f"go build failed ({done.returncode}): {tail}")
    tmp.replace(target)
    return target


def config(
    port: int, bootstrap_servers: str, registry_url: str, topic: str, schema_file: Path
) -> str:
    """The stream: bandwidth-v2 JSON callbacks -> one Avro record per event -> Kafka, answering
    each request only once Kafka acknowledged all of its records (http_server's default)."""
    mapping = (HERE / "bandwidth_v2.blobl").read_text()
    indented = "".join(f"          {line}\n" for line in mapping.splitlines())
    return f"""\
http:
  enabled: false
logger:
  level: WARN
input:
  http_server:
    address: 127.0.0.1:{port}
    path: /callbacks/bandwidth-v2
    allowed_verbs: [POST]
    timeout: 8s
pipeline:
  threads: -1
  processors:
    - unarchive:
        format: json_array
    - mapping: |
{indented}    - mms_avro_encode:
        url: {registry_url}
        subject: {topic}-value
        schema_file: {schema_file}
output:
  mms_kafka:
    seed_brokers: {bootstrap_servers}
    topic: {topic}
    max_in_flight: 1024
"""
