"""The media stores: the filesystem store on disk, and the S3 store's pure parts."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from connector import config as config_mod
from connector import media as media_mod
from connector.config import MediaConfig, S3StoreConfig, Secret
from connector.group_sync import syncfs_covers
from connector.media import (
    DeferredPuts,
    FilesystemMediaStore,
    MediaStoreError,
    S3MediaStore,
    content_key,
    open_store,
    public_url,
    s3_key,
    s3_options,
)

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40
DIGEST = hashlib.sha256(JPEG).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> FilesystemMediaStore:
    return FilesystemMediaStore(tmp_path / "media")


def _path(store: FilesystemMediaStore, content: bytes = JPEG) -> Path:
    digest = hashlib.sha256(content).hexdigest()
    return store.root / digest[:2] / digest


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob(".part-*")]


# --- filesystem store ---------------------------------------------------------------------


def test_stores_content_addressed_and_loads_it_back(store: FilesystemMediaStore) -> None:
    media = store.store(JPEG, "image/jpeg", "cat.jpg")
    assert (media.content_type, media.size, media.sha256, media.filename) == (
        "image/jpeg",
        len(JPEG),
        DIGEST,
        "cat.jpg",
    )
    assert media.uri == _path(store).as_uri()
    assert media.uri.startswith("file:///")
    assert store.load(media.uri) == JPEG
    assert store.remote is False


@pytest.mark.parametrize("root", ["plain", "with space", "100%", "naïve", "a#b?c"])
def test_uris_are_the_paths_file_uris_whatever_the_root(tmp_path: Path, root: str) -> None:
    store = FilesystemMediaStore(tmp_path / root)
    media = store.store(JPEG, "image/jpeg", None)
    assert media.uri == _path(store).as_uri()
    assert store.load(media.uri) == JPEG


def test_storing_the_same_bytes_again_leaves_the_file_alone(store: FilesystemMediaStore) -> None:
    store.store(JPEG, "image/jpeg", None)
    before = _path(store).stat()
    again = store.store(JPEG, "image/png", "other.png")
    assert again.uri == _path(store).as_uri()
    after = _path(store).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.parametrize(
    "damage",
    [JPEG[:100], b"", b"\x00" * len(JPEG)],
    ids=["truncated", "empty", "same size, other bytes"],
)
def test_a_wrong_file_at_the_final_path_is_rewritten(
    store: FilesystemMediaStore, damage: bytes
) -> None:
    path = _path(store)
    path.parent.mkdir(parents=True)
    path.write_bytes(damage)
    store.store(JPEG, "image/jpeg", None)
    assert path.read_bytes() == JPEG


class _Calls:
    """os.fsync, os.replace and the group's syncfs, recorded in order (what was fsynced:
    'file' or 'dir')."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log: list[tuple[str, str]] = []
        self.sync_fds: list[int] = []
        real_fsync, real_replace, real_syncfs = os.fsync, os.replace, media_mod.syncfs

        def fsync(fd: int) -> None:
            kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
            self.log.append(("fsync", kind))
            real_fsync(fd)

        def replace(src: str, dst: str) -> None:
            self.log.append(("replace", Path(dst).name))
            real_replace(src, dst)

        def syncfs(fd: int) -> None:
            self.log.append(("syncfs", os.readlink(f"/proc/self/fd/{fd}")))
            self.sync_fds.append(fd)
            real_syncfs(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(media_mod, "syncfs", syncfs)


NEEDS_SYNCFS = pytest.mark.skipif(
    not syncfs_covers(Path(tempfile.gettempdir())),
    reason="syncfs covers ext4, xfs and btrfs from Linux 5.8",
)


def _store_syncing_by(
    kind: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> FilesystemMediaStore:
    """The store as it is where syncfs reports errors, or (`fsync`) where it does not."""
    if kind == "fsync":
        monkeypatch.setattr(media_mod, "syncfs_covers", lambda _root: False)
    return FilesystemMediaStore(root)


@pytest.fixture
def fsync_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FilesystemMediaStore:
    return _store_syncing_by("fsync", tmp_path / "media", monkeypatch)


SYNC_KINDS = [pytest.param("syncfs", marks=NEEDS_SYNCFS), "fsync"]


@NEEDS_SYNCFS
def test_one_syncfs_of_the_store_makes_the_renamed_file_durable_before_store_returns(
    store: FilesystemMediaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _Calls(monkeypatch)
    store.store(JPEG, "image/jpeg", None)
    # (Before them, the fsyncs of the directories made for it: once per shard.)
    assert calls.log[-2:] == [("replace", DIGEST), ("syncfs", str(store.root))]
    assert ("fsync", "file") not in calls.log


@pytest.mark.parametrize("kind", SYNC_KINDS)
def test_a_failed_sync_fails_the_put(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    store = _store_syncing_by(kind, tmp_path / "media", monkeypatch)

    def broken(_fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(media_mod if kind == "syncfs" else os, kind, broken)
    with pytest.raises(OSError, match="Input/output error"):
        store.store(JPEG, "image/jpeg", None)
    monkeypatch.undo()
    assert _leftovers(store.root) == []
    if kind == "syncfs":
        # The next sync no longer reports the error, so its puts fail with the failed one.
        with pytest.raises(OSError, match="Input/output error"):
            store.store(JPEG, "image/jpeg", None)
    store.store(JPEG, "image/jpeg", None)  # then a put finds the file and syncs it
    assert _path(store).read_bytes() == JPEG


def test_without_syncfs_the_file_and_its_directory_are_fsynced_before_store_returns(
    fsync_store: FilesystemMediaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _Calls(monkeypatch)
    fsync_store.store(JPEG, "image/jpeg", None)
    # The file once renamed (a wrong file under its name is rewritten by the next put), then
    # the directory entry.
    assert calls.log[-3:] == [("replace", DIGEST), ("fsync", "file"), ("fsync", "dir")]


@pytest.mark.parametrize("kind", SYNC_KINDS)
def test_a_file_already_there_is_made_durable_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # A crashed attempt may have renamed it into place without its bytes reaching the disk.
    store = _store_syncing_by(kind, tmp_path / "media", monkeypatch)
    store.store(JPEG, "image/jpeg", None)
    calls = _Calls(monkeypatch)
    store.store(JPEG, "image/jpeg", None)
    expected = [("syncfs", str(store.root))] if kind == "syncfs" else [
        ("fsync", "file"), ("fsync", "dir")
    ]  # fmt: skip
    assert calls.log == expected


@NEEDS_SYNCFS
def test_every_sync_is_on_one_descriptor_opened_before_the_first_write(
    store: FilesystemMediaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # syncfs reports a writeback error once per descriptor: one opened per sync would miss an
    # error an earlier sync, or another process, had been told of.
    calls = _Calls(monkeypatch)
    opened = len(os.listdir("/proc/self/fd"))
    store.store(JPEG, "image/jpeg", None)
    store.store(JPEG + b"2", "image/jpeg", None)
    assert len(calls.sync_fds) == 2 and calls.sync_fds[0] == calls.sync_fds[1]
    assert len(os.listdir("/proc/self/fd")) == opened + 1  # that one, kept


def test_a_put_of_nothing_needs_no_root_and_syncs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An OpenMarket report or an MO without parts: its DeferredPuts hold nothing.
    store = FilesystemMediaStore(tmp_path / "not made yet")
    calls = _Calls(monkeypatch)
    store.put_all(DeferredPuts(store).parts)
    assert calls.log == []
    assert not store.root.exists()


@NEEDS_SYNCFS
def test_the_parts_of_concurrent_puts_share_syncs(
    store: FilesystemMediaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _Calls(monkeypatch)
    contents = [JPEG + bytes([i]) for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda c: store.put_all([(c, hashlib.sha256(c).hexdigest())]), contents))
    syncs = sum(op == "syncfs" for op, _ in calls.log)
    assert 1 <= syncs < len(contents)
    assert all(_path(store, c).read_bytes() == c for c in contents)


def test_a_shard_directory_removed_since_is_made_again(store: FilesystemMediaStore) -> None:
    # The store remembers the shards it made (no stat per put); one removed by hand still works.
    store.store(JPEG, "image/jpeg", None)
    shutil.rmtree(_path(store).parent)
    store.store(JPEG, "image/jpeg", None)
    assert _path(store).read_bytes() == JPEG


@pytest.mark.parametrize("failing", ["replace", "fchmod"])
def test_the_temp_file_is_removed_on_any_error(
    store: FilesystemMediaStore, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    def broken(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, broken)
    with pytest.raises(OSError, match="No space left"):
        store.store(JPEG, "image/jpeg", None)
    monkeypatch.undo()
    assert _leftovers(store.root) == []
    assert not _path(store).exists()


@pytest.fixture
def strict_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("strict_umask")
def test_files_are_0644_and_directories_0755_whatever_the_umask(
    store: FilesystemMediaStore,
) -> None:
    store.store(JPEG, "image/jpeg", None)
    path = _path(store)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o755


@pytest.mark.parametrize(
    "uri",
    ["file:///etc/passwd", "s3://mms-media/ab/abc", "http://example.com/a"],
)
def test_load_refuses_what_is_not_in_the_store(store: FilesystemMediaStore, uri: str) -> None:
    with pytest.raises(ValueError, match="not in the media store"):
        store.load(uri)


def test_load_refuses_a_path_escaping_the_root(store: FilesystemMediaStore) -> None:
    media = store.store(JPEG, None, None)
    with pytest.raises(ValueError, match="not in the media store"):
        store.load(media.uri.rsplit("/", 2)[0] + "/../../outside")


def test_load_refuses_content_that_does_not_match_its_sha256(
    store: FilesystemMediaStore,
) -> None:
    media = store.store(JPEG, None, None)
    _path(store).write_bytes(b"tampered")
    with pytest.raises(MediaStoreError, match="does not match its sha256"):
        store.load(media.uri)


# --- choosing the store -------------------------------------------------------------------


def test_the_connector_default_is_the_filesystem_store(tmp_path: Path) -> None:
    opened = open_store(MediaConfig(root=tmp_path), {})
    assert isinstance(opened, FilesystemMediaStore)
    assert opened.root == tmp_path.resolve()


def test_the_s3_store_is_remote_and_contacts_nothing_when_opened() -> None:
    config = MediaConfig(store="s3", s3=S3StoreConfig(endpoint_url="http://127.0.0.1:9"))
    opened = open_store(config, {})
    assert isinstance(opened, S3MediaStore)
    assert opened.remote is True


# --- S3 store, pure parts -----------------------------------------------------------------


def test_keys_are_the_prefix_then_the_sha256_sharded_by_its_first_two_digits() -> None:
    assert content_key("", DIGEST) == f"{DIGEST[:2]}/{DIGEST}"
    assert content_key("tenant-a/media/", DIGEST) == f"tenant-a/media/{DIGEST[:2]}/{DIGEST}"


def test_s3_uris_are_read_back_as_keys_of_this_store_only() -> None:
    key = content_key("p/", DIGEST)
    assert s3_key(f"s3://mms-media/{key}", "mms-media", "p/") == key
    for uri in (
        f"s3://other-bucket/{key}",  # another bucket
        f"s3://mms-media/{content_key('', DIGEST)}",  # outside the prefix
        f"file:///{key}",
        "s3://mms-media/",
    ):
        with pytest.raises(ValueError, match="not in the media store"):
            s3_key(uri, "mms-media", "p/")


def test_public_urls_join_the_base_and_the_key_with_one_slash() -> None:
    key = content_key("m/", DIGEST)
    expected = f"https://cdn.example.com/media/m/{DIGEST[:2]}/{DIGEST}"
    assert public_url("https://cdn.example.com/media/", key) == expected
    assert public_url("https://cdn.example.com/media", key) == expected


def _presigning_store(**settings: object) -> S3MediaStore:
    config = S3StoreConfig(
        endpoint_url="https://s3.example.test",
        access_key_id=Secret(env="KEY_ID"),
        secret_access_key=Secret(env="KEY"),
        **settings,  # type: ignore[arg-type]
    )
    return S3MediaStore(config, {"KEY_ID": "AKIDEXAMPLE", "KEY": "wJalrXUtnFEMI"})


def test_a_presigned_get_url_has_the_configured_lifetime() -> None:
    key = content_key("", DIGEST)
    url = urlparse(_presigning_store(presign_seconds=900).url_for(key) or "")
    query = parse_qs(url.query)
    assert (url.scheme, url.netloc, url.path) == ("https", "s3.example.test", f"/mms-media/{key}")
    assert query["X-Amz-Expires"] == ["900"]
    assert query["X-Amz-Credential"][0].startswith("AKIDEXAMPLE/")
    assert "wJalrXUtnFEMI" not in url.geturl()


def test_without_public_url_base_or_presign_records_get_no_url() -> None:
    assert _presigning_store().url_for("ab/abc") is None
    base = _presigning_store(public_url_base="https://cdn.example.com")
    assert base.url_for("ab/abc") == "https://cdn.example.com/ab/abc"


def test_http_is_allowed_only_for_an_explicit_http_endpoint() -> None:
    local = s3_options(S3StoreConfig(endpoint_url="http://127.0.0.1:9000"), {})
    assert local["config"]["endpoint"] == "http://127.0.0.1:9000"
    assert local["client_options"]["allow_http"] is True
    tls = s3_options(S3StoreConfig(endpoint_url="https://minio.internal"), {})
    assert tls["client_options"]["allow_http"] is False
    aws = s3_options(S3StoreConfig(region="eu-west-1"), {})
    assert "endpoint" not in aws["config"] and "allow_http" not in aws["client_options"]
    assert aws["config"]["region"] == "eu-west-1"


def test_server_side_encryption_settings() -> None:
    kms = s3_options(
        S3StoreConfig(server_side_encryption="aws:kms", kms_key_id="arn:aws:kms:key/1"), {}
    )
    assert kms["config"]["server_side_encryption"] == "aws:kms"
    assert kms["config"]["sse_kms_key_id"] == "arn:aws:kms:key/1"
    aes = s3_options(S3StoreConfig(server_side_encryption="AES256"), {})
    assert aes["config"]["server_side_encryption"] == "AES256"
    assert "sse_kms_key_id" not in aes["config"]
    assert "server_side_encryption" not in s3_options(S3StoreConfig(), {})["config"]


def test_credentials_come_from_the_secrets_or_else_the_default_chain(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")
    config = S3StoreConfig(
        access_key_id=Secret(env="S3_KEY_ID"), secret_access_key=Secret(file=secret_file)
    )
    settings = s3_options(config, {"S3_KEY_ID": "AKID"})["config"]
    assert (settings["access_key_id"], settings["secret_access_key"]) == ("AKID", "from-a-file")
    # Neither key: obstore's own chain (AWS_* env, web identity, instance profile) decides.
    chain = s3_options(S3StoreConfig(), {})["config"]
    assert "access_key_id" not in chain and "secret_access_key" not in chain
    with pytest.raises(config_mod.ConfigError, match=re.escape("media.s3.access_key_id")):
        s3_options(config, {})


# --- config -------------------------------------------------------------------------------


def test_the_s3_endpoint_comes_from_the_environment_when_set(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("media: {store: s3, s3: {bucket: mms-media, endpoint_url: https://a.test}}\n")
    loaded = config_mod.load(path, {"MMS_S3_ENDPOINT_URL": "http://127.0.0.1:9000"})
    assert loaded.media.s3.endpoint_url == "http://127.0.0.1:9000"
    assert config_mod.load(None, {}).media.store == "filesystem"


@pytest.mark.parametrize(
    ("s3", "problem"),
    [
        ("{access_key_id: {env: K}}", "set both access_key_id and secret_access_key"),
        ("{kms_key_id: k}", "kms_key_id needs server_side_encryption: aws:kms"),
        ("{server_side_encryption: aws:kms:dsse}", "media.s3.server_side_encryption"),
        ("{public_url_base: http://cdn.test}", "must be an https:// URL"),
        ("{public_url_base: https://cdn.test, presign_seconds: 60}", "not both"),
        ("{presign_seconds: 604801}", "media.s3.presign_seconds"),
        ("{endpoint_url: ftp://x}", "must be an http:// or https:// URL"),
        ("{bucket: Media_Bucket}", "media.s3.bucket"),
        ("{prefix: /abs}", "must not start with '/'"),
        ("{region: us-east-1, typo: 1}", "media.s3.typo"),
    ],
)
def test_bad_s3_settings_are_named(tmp_path: Path, s3: str, problem: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"media: {{store: s3, s3: {s3}}}\n")
    with pytest.raises(config_mod.ConfigError, match=re.escape(problem)):
        config_mod.load(path, {})


# --- mms-connector media get --------------------------------------------------------------


def test_media_get_writes_the_object_binary_safe(
    store: FilesystemMediaStore, tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    from connector import cli

    media = store.store(JPEG, "image/jpeg", None)
    config = tmp_path / "c.yaml"
    config.write_text(f"media: {{store: filesystem, root: {store.root}}}\n")
    assert cli.main(["media", "get", media.uri, "--config", str(config)]) == 0
    assert capfdbinary.readouterr().out == JPEG
    out = tmp_path / "part.jpg"
    assert cli.main(["media", "get", media.uri, "--config", str(config), "-o", str(out)]) == 0
    assert out.read_bytes() == JPEG
    assert cli.main(["media", "get", "file:///etc/hostname", "--config", str(config)]) == 1
    assert b"not in the media store" in capfdbinary.readouterr().err


def test_deferred_puts_name_at_once_and_write_only_when_put(store: FilesystemMediaStore) -> None:
    puts = DeferredPuts(store)
    media = puts.store(JPEG, "image/jpeg", "a.jpg")
    assert media == store.named(JPEG, "image/jpeg", "a.jpg")[1]
    assert not _path(store).exists()
    store.put_all(puts.parts)
    assert _path(store).read_bytes() == JPEG
    assert store.load(media.uri) == JPEG
