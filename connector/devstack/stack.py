"""Starting, checking and stopping the local Kafka broker, schema registry, S3 and Redis."""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from importlib import resources
from pathlib import Path
from string import Template

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from connector.devstack import redis_server, s3proxy
from connector.devstack.fetching import (
    default_cache,
    fetch,
    file_lock,
    kafka_libs,
    registry_dir,
    s3proxy_jar,
)
from connector.devstack.java import find_java

log = logging.getLogger("connector.devstack")

HOST = "127.0.0.1"
CCOMPAT_PATH = "/apis/ccompat/v7"
KAFKA_LOG = "kafka.log"
REGISTRY_LOG = "registry.log"
S3_LOG = "s3proxy.log"
REDIS_LOG = "redis.log"
STATE_FILE = "state.json"
STOP_GRACE_S = 20.0
HEAP = "-Xmx512m"


@dataclass(frozen=True)
class Endpoints:
    bootstrap_servers: str  # "127.0.0.1:PORT"
    registry_url: str  # "http://127.0.0.1:PORT/apis/ccompat/v7"
    s3_endpoint_url: str | None = None  # "http://127.0.0.1:PORT" (path-style addressing)
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = field(default=None, repr=False)
    s3_bucket: str | None = None
    # "redis://:PASSWORD@127.0.0.1:PORT/0"; the password is the local server's fixed one.
    redis_url: str | None = field(default=None, repr=False)


@dataclass
class State:
    """What state.json records: ports survive a stopped process, pids are None when stopped."""

    kafka_port: int
    controller_port: int
    registry_port: int
    kafka_pid: int | None = None
    registry_pid: int | None = None
    # None in a state.json written before the stack had S3: `up` then starts only S3Proxy.
    s3_port: int | None = None
    s3_pid: int | None = None
    # Likewise for a state.json from before Redis: `up` then starts only Redis.
    redis_port: int | None = None
    redis_pid: int | None = None

    def endpoints(self) -> Endpoints:
        endpoints = Endpoints(
            bootstrap_servers=f"{HOST}:{self.kafka_port}",
            registry_url=f"http://{HOST}:{self.registry_port}{CCOMPAT_PATH}",
        )
        if self.s3_port is not None:
            endpoints = replace(
                endpoints,
                s3_endpoint_url=f"http://{HOST}:{self.s3_port}",
                s3_access_key_id=s3proxy.ACCESS_KEY_ID,
                s3_secret_access_key=s3proxy.SECRET_ACCESS_KEY,
                s3_bucket=s3proxy.DEV_BUCKET,
            )
        if self.redis_port is not None:
            endpoints = replace(endpoints, redis_url=redis_server.url(HOST, self.redis_port))
        return endpoints


def default_home() -> Path:
    """$MMS_DEVSTACK_HOME, else .devstack in the enclosing git checkout (or the cwd)."""
    if env := os.environ.get("MMS_DEVSTACK_HOME"):
        return Path(env).expanduser().resolve()
    cwd = Path.cwd().resolve()
    repo = next((d for d in (cwd, *cwd.parents) if (d / ".git").exists()), cwd)
    return repo / ".devstack"


def _resolve(home: Path | None) -> Path:
    return default_home() if home is None else home.expanduser().resolve()


def read_state(home: Path) -> State | None:
    try:
        return State(**json.loads((home / STATE_FILE).read_text()))
    except FileNotFoundError:
        return None


def write_state(home: Path, state: State) -> None:
    # Replace atomically so a concurrent `status` never reads half a file.
    tmp = home / f"{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
    tmp.replace(home / STATE_FILE)


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago."""
    # All held open together so the kernel hands out distinct ports.
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in socks]


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        # As the JVM servers do, so lingering TIME_WAIT connections don't count as "taken".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _reuse_or_new(port: int | None) -> int:
    return port if port is not None and _bindable(port) else free_ports(1)[0]


def render_server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    template = resources.files(__package__).joinpath("server.properties").read_text()
    return Template(template).substitute(
        port=port, controller_port=controller_port, data_dir=data_dir
    )


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka's Uuid.randomUuid() makes it, without starting a JVM."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        # Kafka rejects ids starting with "-": its CLI would parse them as options.
        if not cluster_id.startswith("-"):
            return cluster_id


# --- processes -------------------------------------------------------------------------

# Popen objects of processes this Python process started: polling them reaps exited
# children, which would otherwise linger as zombies that still look alive.
_children: dict[int, subprocess.Popen[bytes]] = {}


def _marker(home: Path) -> str:
    # On every java command line, to tell our processes from unrelated ones reusing a pid.
    return f"-Dmms.devstack.home={home}"


def _redis_config(home: Path) -> Path:
    # redis-server takes no -D properties: its config file's path, under the home, is its marker.
    return home / "redis" / "redis.conf"


def _ours(command_line: str, home: Path) -> bool:
    return _marker(home) in command_line or f" {_redis_config(home)}" in command_line


def _command_line(pid: int) -> str:
    if Path("/proc/self").exists():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return ""
        return cmdline.replace(b"\0", b" ").decode(errors="replace")
    # No procfs (macOS): ask ps.
    return subprocess.run(
        ["ps", "-ww", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=False
    ).stdout


def _running(pid: int | None, home: Path) -> bool:
    if pid is None:
        return False
    if (child := _children.get(pid)) is not None:
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    # A zombie or a recycled pid lacks our marker (a zombie's command line is empty).
    return _ours(_command_line(pid), home)


def _spawn(cmd: list[str], log_path: Path, cwd: Path) -> int:
    with log_path.open("ab") as out:
        out.write(f"--- devstack {datetime.now().isoformat()}: {shlex.join(cmd)}\n".encode())
        out.flush()
        # Own session: no terminal signals, and it outlives the process that started it.
        child = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[child.pid] = child
    return child.pid


def _tail(path: Path, lines: int = 20) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def _stop(pids: list[int | None], home: Path) -> bool:
    """SIGTERM, wait up to STOP_GRACE_S, then SIGKILL. True if anything was running."""
    live = [pid for pid in pids if pid is not None and _running(pid, home)]
    for pid in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while (left := [p for p in live if _running(p, home)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        log.warning("pid %d ignored SIGTERM for %.0f s; killing it", pid, STOP_GRACE_S)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # Bounded: a process stuck in the kernel may outlive even SIGKILL for a while.
    deadline = time.monotonic() + 5
    while any(_running(p, home) for p in left) and time.monotonic() < deadline:
        time.sleep(0.1)
    return bool(live)


# --- readiness -------------------------------------------------------------------------


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def _kafka_answers(port: int, timeout: float = 5.0) -> bool:
    # Skip the client until the port accepts, to keep librdkafka from retrying in the background.
    if not _port_open(port):
        return False
    # log_level 0: refused connections while the broker boots are expected, not news.
    admin = AdminClient({"bootstrap.servers": f"{HOST}:{port}", "log_level": 0})
    try:
        return bool(admin.list_topics(timeout=timeout).brokers)
    except KafkaException:
        return False


def _registry_answers(port: int, timeout: float = 2.0) -> bool:
    url = f"http://{HOST}:{port}{CCOMPAT_PATH}/subjects"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
    except OSError:  # URLError, HTTPError and timeouts alike
        return False
    return status == 200


def _wait_ready(
    name: str,
    pid: int,
    answers: Callable[[], bool],
    home: Path,
    log_name: str,
    deadline: float,
) -> None:
    while not answers():
        if not _running(pid, home):
            raise RuntimeError(
                f"{name} exited during startup; last lines of {home / log_name}:\n"
                f"{_tail(home / log_name)}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{name} not ready in time; last lines of {home / log_name}:\n"
                f"{_tail(home / log_name)}"
            )
        time.sleep(0.5)


# --- services --------------------------------------------------------------------------


def _format_storage(java: Path, classpath: str, props: Path, data_dir: Path) -> None:
    log.info("formatting Kafka storage in %s", data_dir)
    cmd = [str(java), "-cp", classpath, "kafka.tools.StorageTool", "format"]
    cmd += ["-t", new_cluster_id(), "-c", str(props)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise RuntimeError(f"formatting Kafka storage failed ({done.returncode}):\n{tail}")


def _launch_kafka(home: Path, cache: Path, state: State) -> int:
    kafka_home = home / "kafka"
    data_dir = kafka_home / "data"
    kafka_home.mkdir(exist_ok=True)
    props = kafka_home / "server.properties"
    props.write_text(render_server_properties(state.kafka_port, state.controller_port, data_dir))
    log4j = kafka_home / "log4j2.yaml"
    log4j.write_bytes(resources.files(__package__).joinpath("log4j2.yaml").read_bytes())
    java = find_java(17, "Kafka")
    classpath = f"{kafka_libs(cache)}/*"
    if not (data_dir / "meta.properties").exists():
        _format_storage(java, classpath, props, data_dir)
    log.info("starting Kafka on %s:%d", HOST, state.kafka_port)
    cmd = [str(java), HEAP, _marker(home), f"-Dlog4j2.configurationFile={log4j}"]
    cmd += ["-cp", classpath, "kafka.Kafka", str(props)]
    return _spawn(cmd, home / KAFKA_LOG, cwd=home)


def _launch_registry(home: Path, cache: Path, state: State) -> int:
    java = find_java(21, "Apicurio Registry", override_env="MMS_DEVSTACK_JAVA21")
    log.info("starting Apicurio Registry on %s:%d", HOST, state.registry_port)
    cmd = [
        str(java),
        HEAP,
        _marker(home),
        f"-Dquarkus.http.port={state.registry_port}",
        f"-Dquarkus.http.host={HOST}",
        # The management interface is build-time enabled and would take 0.0.0.0:9000, clashing
        # between stacks; an ephemeral loopback port keeps it out of the way.
        f"-Dquarkus.management.host={HOST}",
        "-Dquarkus.management.port=0",
        "-jar",
        str(registry_dir(cache) / "quarkus-run.jar"),
    ]
    return _spawn(cmd, home / REGISTRY_LOG, cwd=home)


def _launch_s3(home: Path, cache: Path, state: State) -> int:
    s3_home = home / "s3"
    data_dir = s3_home / "data"
    s3proxy.make_buckets(data_dir)
    props = s3_home / "s3proxy.conf"
    props.write_text(s3proxy.render_properties(HOST, _port(state.s3_port), data_dir))
    java = find_java(17, "S3Proxy")
    log.info("starting S3Proxy on %s:%d", HOST, state.s3_port)
    cmd = [str(java), HEAP, _marker(home), "-jar", str(s3proxy_jar(cache))]
    cmd += ["--properties", str(props)]
    return _spawn(cmd, home / S3_LOG, cwd=home)


def _launch_redis(home: Path, cache: Path, state: State) -> int:
    server = redis_server.find_server(cache)  # on PATH by now: REDIS.prepare put it there
    config = _redis_config(home)
    data_dir = config.parent / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    config.write_text(
        redis_server.render_config(HOST, _port(state.redis_port), data_dir, home / REDIS_LOG)
    )
    log.info("starting Redis (%s) on %s:%d", server, HOST, state.redis_port)
    return _spawn([str(server), str(config)], home / REDIS_LOG, cwd=home)


def _port(port: int | None) -> int:
    if port is None:
        raise RuntimeError("no port recorded for this service; run `up` first")
    return port


@dataclass(frozen=True)
class _Service:
    """One process of the stack: how it starts, answers, and where state.json keeps it."""

    name: str
    log_name: str
    pid_field: str
    port_fields: tuple[str, ...]
    launch: Callable[[Path, Path, State], int]
    answers: Callable[[State], bool]
    # Run with the cache before any launch and outside the start-up timeout, like fetching.
    prepare: Callable[[Path], object] | None = None


KAFKA = _Service(
    "Kafka",
    KAFKA_LOG,
    "kafka_pid",
    ("kafka_port", "controller_port"),
    _launch_kafka,
    lambda state: _kafka_answers(state.kafka_port),
)
REGISTRY = _Service(
    "Apicurio Registry",
    REGISTRY_LOG,
    "registry_pid",
    ("registry_port",),
    _launch_registry,
    lambda state: _registry_answers(state.registry_port),
)
S3 = _Service(
    "S3Proxy",
    S3_LOG,
    "s3_pid",
    ("s3_port",),
    _launch_s3,
    lambda state: state.s3_port is not None and s3proxy.answers(HOST, state.s3_port),
)
REDIS = _Service(
    "Redis",
    REDIS_LOG,
    "redis_pid",
    ("redis_port",),
    _launch_redis,
    lambda state: state.redis_port is not None and redis_server.answers(HOST, state.redis_port),
    # Installs Debian's redis-server first when it is missing and we are root with apt-get.
    prepare=redis_server.find_server,
)
SERVICES = (KAFKA, REGISTRY, S3, REDIS)


def _pid(state: State, service: _Service) -> int | None:
    pid: int | None = getattr(state, service.pid_field)
    return pid


def _healthy(home: Path, state: State, service: _Service) -> bool:
    return _running(_pid(state, service), home) and service.answers(state)


def _wait(home: Path, state: State, service: _Service, pid: int, deadline: float) -> None:
    answers = functools.partial(service.answers, state)
    _wait_ready(service.name, pid, answers, home, service.log_name, deadline)


def _prepare(cache: Path, services: list[_Service]) -> None:
    fetch(cache)
    for service in services:
        if service.prepare is not None:
            service.prepare(cache)


def _start(home: Path, state: State, service: _Service, timeout: float) -> None:
    """Start one service on state's ports and wait; on failure stop it and record it stopped."""
    cache = default_cache()
    _prepare(cache, [service])
    for port_field in service.port_fields:
        # A stack recorded before this service existed has no port for it yet.
        if getattr(state, port_field) is None:
            setattr(state, port_field, free_ports(1)[0])
    started = time.monotonic()
    pid = service.launch(home, cache, state)
    setattr(state, service.pid_field, pid)
    write_state(home, state)
    try:
        _wait(home, state, service, pid, started + timeout)
    except BaseException:
        _stop([pid], home)
        setattr(state, service.pid_field, None)
        write_state(home, state)
        raise
    log.info("%s ready in %.1f s", service.name, time.monotonic() - started)


@contextlib.contextmanager
def _locked(home: Path | None) -> Iterator[Path]:
    resolved = _resolve(home)
    with file_lock(resolved / ".lock"):
        yield resolved


# --- public API ------------------------------------------------------------------------


def status(home: Path | None = None) -> Endpoints | None:
    """Endpoints of the stack in `home` if every service runs and answers, else None."""
    resolved = _resolve(home)
    state = read_state(resolved)
    if state is None or not all(_healthy(resolved, state, service) for service in SERVICES):
        return None
    return state.endpoints()


def up(home: Path | None = None, *, timeout: float = 180) -> Endpoints:
    """Return the running stack in `home`, starting (and first fetching) what is not running.

    `timeout` bounds the start-up after fetching; a first fetch may take longer.
    """
    with _locked(home) as home:
        state = read_state(home)
        if state is not None:
            stopped = [s for s in SERVICES if not _healthy(home, state, s)]
            if not stopped:
                log.info("devstack already running in %s", home)
                return state.endpoints()
        else:
            stopped = list(SERVICES)
            kafka_port, controller_port, registry_port, s3_port, redis_port = free_ports(5)
            state = State(
                kafka_port, controller_port, registry_port, s3_port=s3_port, redis_port=redis_port
            )

        cache = default_cache()
        _prepare(cache, stopped)
        started = time.monotonic()
        deadline = started + timeout
        # Whatever runs but does not answer is stuck: replace it, on the same port if free.
        for service in stopped:
            _stop([_pid(state, service)], home)
            setattr(state, service.pid_field, None)
            for port_field in service.port_fields:
                setattr(state, port_field, _reuse_or_new(getattr(state, port_field)))

        launched: dict[_Service, int] = {}
        try:
            for service in stopped:
                pid = launched[service] = service.launch(home, cache, state)
                setattr(state, service.pid_field, pid)
            # Recorded before waiting, so `down` elsewhere can stop a start-up that hangs.
            write_state(home, state)
            # All boot concurrently; waiting on one after the other costs no extra time.
            for service, pid in launched.items():
                _wait(home, state, service, pid, deadline)
        except BaseException:
            _stop(list(launched.values()), home)
            for service in launched:
                setattr(state, service.pid_field, None)
            # A service that was already healthy keeps running and stays recorded.
            if all(_pid(state, service) is None for service in SERVICES):
                (home / STATE_FILE).unlink(missing_ok=True)
            else:
                write_state(home, state)
            raise
        log.info("devstack ready in %.1f s", time.monotonic() - started)
        return state.endpoints()


def down(home: Path | None = None) -> bool:
    """Stop the stack in `home` and forget its state. True if a process was stopped."""
    with _locked(home) as home:
        state = read_state(home)
        if state is None:
            log.info("no devstack recorded in %s", home)
            return False
        stopped = _stop([_pid(state, service) for service in SERVICES], home)
        (home / STATE_FILE).unlink(missing_ok=True)
        log.info("devstack in %s %s", home, "stopped" if stopped else "was not running")
        return stopped


def _require_state(home: Path) -> State:
    state = read_state(home)
    if state is None:
        raise RuntimeError(f"no devstack in {home}; run `up` first")
    return state


def _stop_service(home: Path | None, service: _Service) -> bool:
    with _locked(home) as home:
        state = _require_state(home)
        stopped = _stop([_pid(state, service)], home)
        setattr(state, service.pid_field, None)
        write_state(home, state)
        log.info("%s %s", service.name, "stopped" if stopped else "was not running")
        return stopped


def _start_service(home: Path | None, service: _Service, timeout: float) -> Endpoints:
    with _locked(home) as home:
        state = _require_state(home)
        if not _healthy(home, state, service):
            _stop([_pid(state, service)], home)
            _start(home, state, service, timeout)
        return state.endpoints()


def stop_kafka(home: Path | None = None) -> bool:
    """Stop only the broker, keeping its port and data for start_kafka. True if it ran."""
    return _stop_service(home, KAFKA)


def start_kafka(home: Path | None = None, *, timeout: float = 120) -> Endpoints:
    """Start the broker again on its recorded port with its data; no-op if it answers."""
    return _start_service(home, KAFKA, timeout)


def stop_s3(home: Path | None = None) -> bool:
    """Stop only S3Proxy, keeping its port and objects for start_s3. True if it ran."""
    return _stop_service(home, S3)


def start_s3(home: Path | None = None, *, timeout: float = 60) -> Endpoints:
    """Start S3Proxy again on its recorded port with its objects; no-op if it answers."""
    return _start_service(home, S3, timeout)


def stop_redis(home: Path | None = None) -> bool:
    """Stop only Redis, keeping its port for start_redis (its keys go). True if it ran."""
    return _stop_service(home, REDIS)


def start_redis(home: Path | None = None, *, timeout: float = 30) -> Endpoints:
    """Start Redis again, empty, on its recorded port; no-op if it answers."""
    return _start_service(home, REDIS, timeout)
