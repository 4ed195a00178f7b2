"""connector.devstack pieces that need no JVM, Maven or network."""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path

import pytest

from connector import devstack
from connector.devstack import cli, fetching, java, s3proxy, stack


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('openjdk version "25" 2025-09-16', 25),
        ('openjdk version "21-ea" 2023-09-19', 21),
        ('java version "1.8.0_402"', 8),
        ('openjdk version "21.0.2" 2024-01-16 LTS', 21),
        ("Error: could not find libjava.so", None),
        ("", None),
    ],
)
def test_parse_java_major(output: str, major: int | None) -> None:
    assert java.parse_java_major(output) == major


def _fake_java(directory: Path, version: str) -> Path:
    directory.mkdir(parents=True)
    binary = directory / "java"
    binary.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2025-01-01' >&2\n")
    binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
    return binary


def test_find_java_honours_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = _fake_java(tmp_path / "jdk" / "bin", "21.0.1")
    # A JDK home works as well as the binary itself.
    monkeypatch.setenv("MMS_DEVSTACK_JAVA21", str(tmp_path / "jdk"))
    assert java.find_java(21, "test", override_env="MMS_DEVSTACK_JAVA21") == binary


def test_find_java_rejects_old_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMS_DEVSTACK_JAVA21", str(_fake_java(tmp_path / "bin", "17.0.1")))
    with pytest.raises(RuntimeError, match="MMS_DEVSTACK_JAVA21"):
        java.find_java(21, "test", override_env="MMS_DEVSTACK_JAVA21")


def test_find_java_scans_for_highest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_java(tmp_path / "jvm" / "jdk-17" / "bin", "17.0.1")
    _fake_java(tmp_path / "jvm" / "jdk-21" / "bin", "21.0.1")
    newest = _fake_java(tmp_path / "jvm" / "jdk-25" / "bin", "25")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(java, "JVM_GLOBS", (str(tmp_path / "jvm" / "*" / "bin" / "java"),))
    assert java.find_java(21, "test") == newest
    with pytest.raises(RuntimeError, match="needs Java 26 or newer"):
        java.find_java(26, "test")


def test_server_properties_has_ports_and_data_dir(tmp_path: Path) -> None:
    text = stack.render_server_properties(19092, 19093, tmp_path / "data")
    props = dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["offsets.topic.replication.factor"] == "1"


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = stack.free_ports(3)
    assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_cluster_id_shape() -> None:
    cluster_id = stack.new_cluster_id()
    assert len(cluster_id) == 22
    assert not cluster_id.startswith("-")


def test_state_round_trip(tmp_path: Path) -> None:
    assert stack.read_state(tmp_path) is None
    state = stack.State(kafka_port=1, controller_port=2, registry_port=3, kafka_pid=10)
    stack.write_state(tmp_path, state)
    assert stack.read_state(tmp_path) == state
    assert state.endpoints() == devstack.Endpoints(
        bootstrap_servers="127.0.0.1:1", registry_url="http://127.0.0.1:3/apis/ccompat/v7"
    )


def test_state_with_s3_names_its_endpoint_and_local_credentials(tmp_path: Path) -> None:
    state = stack.State(1, 2, 3, s3_port=4, s3_pid=11)
    stack.write_state(tmp_path, state)
    assert stack.read_state(tmp_path) == state
    endpoints = state.endpoints()
    assert endpoints.s3_endpoint_url == "http://127.0.0.1:4"
    assert endpoints.s3_bucket == "mms-media"
    assert (endpoints.s3_access_key_id, endpoints.s3_secret_access_key) == (
        s3proxy.ACCESS_KEY_ID,
        s3proxy.SECRET_ACCESS_KEY,
    )
    # Even the local secret stays out of reprs (and so out of logs and test failures).
    assert s3proxy.SECRET_ACCESS_KEY not in repr(endpoints)


def test_state_from_before_s3_loads_without_it(tmp_path: Path) -> None:
    # A stack started by an older checkout: `up` must keep its Kafka and add only S3Proxy.
    old = {"kafka_port": 1, "controller_port": 2, "registry_port": 3, "kafka_pid": 10}
    (tmp_path / stack.STATE_FILE).write_text(json.dumps(old))
    state = stack.read_state(tmp_path)
    assert state is not None
    assert (state.kafka_pid, state.s3_port, state.s3_pid) == (10, None, None)
    assert state.endpoints().s3_endpoint_url is None


def test_s3proxy_properties(tmp_path: Path) -> None:
    text = s3proxy.render_properties("127.0.0.1", 19000, tmp_path / "data")
    props = dict(line.split("=", 1) for line in text.splitlines())
    assert props["s3proxy.endpoint"] == "http://127.0.0.1:19000"
    assert props["s3proxy.authorization"] == "aws-v2-or-v4"
    assert props["s3proxy.identity"] == s3proxy.ACCESS_KEY_ID
    assert props["s3proxy.credential"] == s3proxy.SECRET_ACCESS_KEY
    assert props["jclouds.provider"] == "filesystem"
    assert props["jclouds.filesystem.basedir"] == str(tmp_path / "data")


def test_buckets_are_directories_made_idempotently(tmp_path: Path) -> None:
    s3proxy.make_buckets(tmp_path / "data")
    (tmp_path / "data" / "mms-test" / "kept").write_bytes(b"object")
    s3proxy.make_buckets(tmp_path / "data")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["mms-media", "mms-test"]
    assert (tmp_path / "data" / "mms-test" / "kept").read_bytes() == b"object"


def test_s3proxy_does_not_answer_on_a_closed_port() -> None:
    (port,) = stack.free_ports(1)
    assert not s3proxy.answers("127.0.0.1", port, timeout=1)


def test_endpoint_lines_name_s3_only_when_there() -> None:
    kafka_only = devstack.Endpoints("127.0.0.1:1", "http://127.0.0.1:2/apis/ccompat/v7")
    assert cli.endpoint_lines(kafka_only) == [
        "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1",
        "SCHEMA_REGISTRY_URL=http://127.0.0.1:2/apis/ccompat/v7",
    ]
    lines = cli.endpoint_lines(stack.State(1, 2, 3, s3_port=4).endpoints())
    assert lines[2:] == [
        "S3_ENDPOINT_URL=http://127.0.0.1:4",
        "S3_BUCKET=mms-media",
        f"S3_ACCESS_KEY_ID={s3proxy.ACCESS_KEY_ID}",
        f"S3_SECRET_ACCESS_KEY={s3proxy.SECRET_ACCESS_KEY}",
    ]


def test_status_of_dead_stack_is_none(tmp_path: Path) -> None:
    # Pids that are not ours (pid 1 lacks the home marker) must not count as running.
    kafka_port, controller_port, registry_port, s3_port = stack.free_ports(4)
    state = stack.State(kafka_port, controller_port, registry_port, 1, 1, s3_port=s3_port, s3_pid=1)
    stack.write_state(tmp_path, state)
    assert devstack.status(tmp_path) is None


def test_cli_status_and_down_without_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert devstack.main(["--home", str(tmp_path), "status"]) == 1
    assert devstack.main(["--home", str(tmp_path), "down"]) == 0
    assert capsys.readouterr().out == ""


def test_defaults_follow_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMS_DEVSTACK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MMS_DEVSTACK_CACHE", str(tmp_path / "cache"))
    assert devstack.default_home() == tmp_path / "home"
    assert devstack.default_cache() == tmp_path / "cache"


def test_default_home_is_in_enclosing_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "sub").mkdir()
    monkeypatch.delenv("MMS_DEVSTACK_HOME", raising=False)
    monkeypatch.chdir(tmp_path / "sub")
    assert devstack.default_home() == tmp_path.resolve() / ".devstack"


def test_fetch_skips_complete_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    complete = (fetching.kafka_dir, fetching.registry_dir, fetching.s3proxy_dir)
    for directory in (where(tmp_path) for where in complete):
        directory.mkdir(parents=True)
        (directory / fetching.COMPLETE_MARKER).touch()

    def no_maven(args: list[str], cwd: Path) -> None:
        raise AssertionError(f"mvn {args} should not run")

    monkeypatch.setattr(fetching, "_mvn", no_maven)
    devstack.fetch(tmp_path)


def test_fetch_redoes_interrupted_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = fetching.kafka_dir(tmp_path)
    target.mkdir(parents=True)
    (target / "half-downloaded.jar").touch()
    calls: list[list[str]] = []
    monkeypatch.setattr(fetching, "_mvn", lambda args, cwd: calls.append(args))

    fetching._fetch_kafka(tmp_path)

    assert len(calls) == 1
    assert "dependency:copy-dependencies" in calls[0]
    assert not (target / "half-downloaded.jar").exists()
    assert fetching.is_complete(target)


def test_fetch_s3proxy_keeps_the_jar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def maven_copies_the_jar(args: list[str], cwd: Path) -> None:
        assert f"-Dartifact={fetching.S3PROXY_ARTIFACT}" in args
        (cwd / fetching.s3proxy_jar(tmp_path).name).write_bytes(b"PK")

    monkeypatch.setattr(fetching, "_mvn", maven_copies_the_jar)
    fetching._fetch_s3proxy(tmp_path)

    assert fetching.s3proxy_jar(tmp_path).read_bytes() == b"PK"
    assert fetching.is_complete(fetching.s3proxy_dir(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [fetching.s3proxy_dir(tmp_path).name]


def test_fetch_s3proxy_without_the_jar_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetching, "_mvn", lambda args, cwd: None)
    with pytest.raises(RuntimeError, match="jar-with-dependencies"):
        fetching._fetch_s3proxy(tmp_path)
    assert not fetching.is_complete(fetching.s3proxy_dir(tmp_path))
