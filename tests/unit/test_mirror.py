"""The mirror's pure parts: what needs mirroring, backoff, entries, offsets to commit."""

from __future__ import annotations

import hashlib

import pytest

from connector.config import Config, ConfigError
from connector.fetch import Failed, Fetched
from connector.mirror import (
    Offsets,
    as_announced,
    needs_mirroring,
    retry_delay,
    source_topics,
    stored_entry,
    unavailable_entry,
)
from connector.record import Media

PROVIDER_URL = "https://messaging.bandwidth.com/api/v2/users/1/media/a/0/IMG.jpg"


@pytest.mark.parametrize(
    ("entry", "needed"),
    [
        ({"uri": PROVIDER_URL, "status": "provider"}, True),
        ({"uri": PROVIDER_URL}, True),  # a v1 record: no status
        ({"uri": "http://media.example/x"}, True),
        ({"uri": "s3://mms-media/ab/abc", "status": "stored"}, False),
        ({"uri": "file:///var/media/ab/abc"}, False),
        ({"uri": PROVIDER_URL, "status": "unavailable", "reason": "http_404"}, False),
        ({"uri": PROVIDER_URL, "status": "stored"}, False),
    ],
)
def test_needs_mirroring(entry: dict[str, str], needed: bool) -> None:
    assert needs_mirroring(entry) is needed


def test_retry_delay_doubles_up_to_the_cap() -> None:
    assert [retry_delay(n, 1, 300) for n in range(11)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        300,
        300,
    ]
    assert retry_delay(10_000, 0.5, 60) == 60  # no overflow however long it keeps failing


def test_content_unlike_what_the_callback_announced_is_not_stored() -> None:
    # Telnyx gives each media entry's size and SHA-256; a download unlike them is retried.
    content = b"\xff\xd8 a picture"
    digest = hashlib.sha256(content).hexdigest()
    fetched = Fetched(content, "image/jpeg", digest, len(content), PROVIDER_URL)
    plain = {"uri": PROVIDER_URL, "size": None, "sha256": None}
    assert as_announced(fetched, plain) is fetched
    assert (
        as_announced(fetched, {**plain, "size": len(content), "sha256": digest.upper()}) is fetched
    )
    short = as_announced(fetched, {**plain, "size": len(content) + 1})
    assert isinstance(short, Failed) and (short.reason, short.retryable) == (
        "content_mismatch",
        True,
    )
    swapped = as_announced(fetched, {**plain, "sha256": "0" * 64})
    assert isinstance(swapped, Failed) and swapped.reason == "content_mismatch"


def test_entries() -> None:
    entry = {
        "uri": PROVIDER_URL,
        "content_type": None,
        "size": None,
        "sha256": None,
        "filename": "IMG.jpg",
        "source_uri": None,
        "url": None,
        "status": "provider",
        "reason": None,
    }
    media = Media("s3://b/ab/abcd", "image/jpeg", 3, "abcd", "IMG.jpg", url="https://cdn/ab/abcd")
    assert stored_entry(entry, media) == {
        "uri": "s3://b/ab/abcd",
        "content_type": "image/jpeg",
        "size": 3,
        "sha256": "abcd",
        "filename": "IMG.jpg",
        "source_uri": PROVIDER_URL,
        "url": "https://cdn/ab/abcd",
        "status": "stored",
        "reason": None,
    }
    assert unavailable_entry(entry, "http_404") == {
        **entry,
        "status": "unavailable",
        "reason": "http_404",
    }


def test_offsets_commit_only_up_to_the_lowest_unacknowledged() -> None:
    offsets = Offsets()
    offsets.assign([("t", 0), ("t", 1)])
    a = offsets.add(("t", 0), 10)
    offsets.add(("t", 0), 11)
    offsets.add(("t", 0), 12)
    b = offsets.add(("t", 1), 5)
    assert a is not None and b is not None
    assert offsets.add(("other", 0), 1) is None  # not ours
    assert offsets.uncommitted() == []
    offsets.done(a, 11)
    offsets.done(a, 12)
    assert offsets.positions() == {}  # 10 is not acknowledged: nothing past it may commit
    offsets.done(a, 10)
    offsets.done(b, 5)
    assert offsets.positions() == {("t", 0): 13, ("t", 1): 6}
    assert [(tp.topic, tp.partition, tp.offset) for tp in offsets.uncommitted()] == [
        ("t", 0, 13),
        ("t", 1, 6),
    ]
    assert offsets.uncommitted() == []  # reported once
    assert offsets.pending() == 0


def test_offsets_of_a_revoked_partition_are_forgotten() -> None:
    offsets = Offsets()
    offsets.assign([("t", 0)])
    state = offsets.add(("t", 0), 3)
    assert state is not None
    offsets.revoke([("t", 0)])
    offsets.done(state, 3)  # a late acknowledgement changes nothing
    assert offsets.positions() == {}
    offsets.assign([("t", 0)])  # assigned again: a fresh start from the committed offset
    assert offsets.pending() == 0


def test_source_topics_default_to_the_enabled_providers() -> None:
    config = Config.model_validate(
        {
            "providers": {
                "bandwidth-v2": {"enabled": True, "topic": "bw"},
                "sinch": {"enabled": True, "topic": "sinch"},
                "openmarket": {"enabled": False, "topic": "om"},
            }
        }
    )
    assert source_topics(config) == ["bw", "sinch"]
    config.mirror.source_topics = ["only"]
    assert source_topics(config) == ["only"]
    config.mirror.source_topics = [config.mirror.topic]
    with pytest.raises(ConfigError, match="also a source topic"):
        source_topics(config)


def test_mirror_config_keys() -> None:
    config = Config.model_validate(
        {
            "mirror": {"concurrency": 4},
            "providers": {
                "bandwidth-v2": {
                    "media_fetch": {
                        "username": "u",
                        "password": {"env": "P"},
                        "allowed_hosts": ["*.Bandwidth.com"],
                        "horizon_seconds": 60,
                    }
                }
            },
        }
    )
    assert config.mirror.group_id == "mms-connector-mirror"
    assert config.mirror.topic == "mms.events.mirrored"
    fetch = config.providers["bandwidth-v2"].media_fetch
    assert (fetch.allowed_hosts, fetch.max_redirects, fetch.max_bytes) == (
        ["*.bandwidth.com"],
        3,
        5 * 1024 * 1024,
    )
    for bad in (
        {"username": "u"},
        {"allowed_hosts": ["a*b.com"]},
        {"retry_initial_seconds": 10, "retry_max_seconds": 1},
        {"username": "u", "password": {"env": "P"}, "authorization": {"env": "A"}},
    ):
        with pytest.raises(ValueError):
            Config.model_validate({"providers": {"sinch": {"media_fetch": bad}}})


def test_mirror_command_refuses_its_own_topic_as_a_source(tmp_path, capsys) -> None:
    from connector import cli

    config = tmp_path / "mirror.yaml"
    config.write_text("mirror: {topic: mms.events, source_topics: [mms.events]}\n")
    assert cli.main(["mirror", "--config", str(config)]) == 2
    assert "also a source topic" in capsys.readouterr().err
