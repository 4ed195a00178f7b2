"""Where inline media (parts carried in the callback body) and large dead-letter bodies are kept.

Two stores behind one interface, both content-addressed (`<prefix><sha256[:2]>/<sha256>`): the
same bytes always land under the same name, so a provider's retry stores nothing twice and a
consumer can check what it fetched against the record's sha256.

- `S3MediaStore`, the production one: any server speaking the S3 API (AWS S3, GCS's S3 API,
  MinIO, Ceph, S3Proxy), URIs `s3://<bucket>/<key>`.
- `FilesystemMediaStore`, for one machine: URIs `file:///...`.

Both are synchronous: they run on a worker thread of the request path (connector/callbacks.py) and
have returned, durably, before the callback is acknowledged.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import threading
import weakref
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlparse
from urllib.request import url2pathname

import obstore
from obstore.exceptions import BaseError as ObjectStoreError
from obstore.store import S3Store

from connector.config import MediaConfig, S3StoreConfig
from connector.group_sync import GroupSync, syncfs, syncfs_covers
from connector.record import Media

FILE_MODE = 0o644  # readable by the consumers and the web server next to the connector
DIR_MODE = 0o755
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class MediaStoreError(OSError):
    """The store could not take or give back an object: ours to fix, so the caller answers 503.

    An OSError, as the filesystem store's own errors are, so every caller handles both alike.
    """


class MediaStore(Protocol):
    # True when a put crosses the network: translating then always runs off the event loop.
    remote: bool

    def store(self, content: bytes, content_type: str | None, filename: str | None) -> Media: ...

    def load(self, uri: str) -> bytes: ...


def open_store(config: MediaConfig, env: Mapping[str, str]) -> MediaStore:
    """The configured store; secrets resolved from `env`, nothing contacted yet."""
    if config.store == "s3":
        return S3MediaStore(config.s3, env)
    return FilesystemMediaStore(config.root)


def content_key(prefix: str, digest: str) -> str:
    return f"{prefix}{digest[:2]}/{digest}"


def checked(content: bytes, name: str) -> bytes:
    """`content` when it matches the sha256 its content-addressed `name` ends with."""
    digest = name.rsplit("/", 1)[-1]
    if _SHA256_HEX.fullmatch(digest) and hashlib.sha256(content).hexdigest() != digest:
        raise MediaStoreError(f"{name}: the content does not match its sha256")
    return content


class FilesystemMediaStore:
    """Content-addressed files under `root`, durable on return: where syncfs(2) covers the root
    (Linux 5.8+, ext4, xfs or btrfs) by one syncfs shared with the puts of other callbacks in
    flight (connector/group_sync.py), elsewhere by an fsync of each file and its directory.

    Written with os-level calls, one of each per part: tempfile.mkstemp, a buffered file object
    and a stat of the shard per put cost ~130 us of CPU per 200 KB part more than the write and
    fsyncs themselves (bench/results/2026-12-02-speed.md).
    """

    remote = False

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._shards: set[str] = set()  # shard directories known to exist, durably
        # Chosen at the first put, once the root exists (`_group_sync`).
        self._setup = threading.Lock()
        self._set_up = False
        self._group: GroupSync | None = None
        # Path.as_uri per part cost ~8 us (pathlib's parsing); the root's is quoted once and
        # the rest of the name is hex.
        root_uri = self.root.as_uri()
        self._uri_prefix = root_uri if root_uri.endswith("/") else f"{root_uri}/"

    def store(self, content: bytes, content_type: str | None, filename: str | None) -> Media:
        digest, media = self.named(content, content_type, filename)
        self.put_all([(content, digest)])
        return media

    def named(
        self, content: bytes, content_type: str | None, filename: str | None
    ) -> tuple[str, Media]:
        """What `store` returns, and the sha256 that names it, without writing anything."""
        digest = hashlib.sha256(content).hexdigest()
        media = Media(
            uri=self._uri_prefix + content_key("", digest),
            content_type=content_type,
            size=len(content),
            sha256=digest,
            filename=filename,
        )
        return digest, media

    def put_all(self, parts: Sequence[tuple[bytes, str]]) -> None:
        """Write each content under its sha256; all of them durable on return."""
        if not parts:
            return  # nothing written, nothing to wait for (a callback without inline parts)
        self.write(parts)
        self.sync(parts)

    def write(self, parts: Sequence[tuple[bytes, str]]) -> None:
        """Write each content under its sha256, durable once `sync` has returned."""
        self._group_sync()  # before anything is written (see there)
        for content, digest in parts:
            path = self.root / content_key("", digest)
            if not _holds(str(path), len(content), digest):
                # Absent, or a file left wrong at its final path (a crash, a full disk, a hand
                # edit): written again, whole.
                self._write(path, content)

    def sync(self, parts: Sequence[tuple[bytes, str]]) -> None:
        """Make what `write` wrote of `parts` durable (and whatever else was written before)."""
        group = self._group_sync()
        if group is not None:
            group.wait()
            return
        paths = [str(self.root / content_key("", digest)) for _, digest in parts]
        for written in paths:
            _fsync(written)
        for shard in sorted({os.path.dirname(written) for written in paths}):
            _fsync_dir(shard)

    def _group_sync(self) -> GroupSync | None:
        """The group commit, when syncfs covers the root, set up at the first put: the root made
        and one descriptor on it kept for the store's life, opened before anything is written.
        syncfs reports an error once per descriptor: one opened per sync would miss an error
        another process (a worker) or an earlier sync had already been told of."""
        with self._setup:
            if not self._set_up:
                self._make_dirs(self.root)
                if syncfs_covers(self.root):
                    fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                    weakref.finalize(self, os.close, fd)
                    self._group = GroupSync(lambda: syncfs(fd))
                self._set_up = True
            return self._group

    def load(self, uri: str) -> bytes:
        """Content this store wrote, by its URI (dead-letter replay, `media get`)."""
        parsed = urlparse(uri)
        path = Path(url2pathname(parsed.path)).resolve()
        if parsed.scheme != "file" or not path.is_relative_to(self.root):
            raise ValueError(f"{uri} is not in the media store at {self.root}")
        return checked(path.read_bytes(), str(path))

    def _write(self, path: Path, content: bytes) -> None:
        shard = str(path.parent)
        if shard not in self._shards:
            self._make_dirs(path.parent)
            self._shards.add(shard)
        # Write, then rename: a reader never sees a half-written file. The name is unique across
        # threads, processes and pods sharing the volume. Nothing is durable until put_all's
        # sync; a file renamed into place by an attempt that crashed before it is checked
        # against its sha256 by the next put of the same content (_holds).
        tmp = f"{shard}/.part-{secrets.token_hex(8)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(tmp, flags, FILE_MODE)
        except FileNotFoundError:  # the shard was removed since (by hand): made again
            self._make_dirs(path.parent)
            fd = os.open(tmp, flags, FILE_MODE)
        try:
            try:
                _write_all(fd, content)
                os.fchmod(fd, FILE_MODE)  # the mode given to open is narrowed by the umask
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _make_dirs(self, shard: Path) -> None:
        """Create `shard` (and the root) as needed, each new entry durable in its parent."""
        missing = []
        current = shard
        while not current.is_dir():
            missing.append(current)
            current = current.parent
        for directory in reversed(missing):
            with contextlib.suppress(FileExistsError):  # another thread made it meanwhile
                directory.mkdir(mode=DIR_MODE)
                os.chmod(directory, DIR_MODE)  # mkdir's mode is narrowed by the umask
            _fsync_dir(str(directory.parent))


class DeferredPuts:
    """A filesystem store that names what it is given at once and writes it later, all of a
    callback's parts together (`parts`, for connector/put_batches.py): its translation, CPU
    work, then runs on the event loop and only the writes and syncs leave it. Translating a
    multipart MO on a worker thread instead, the threads' turns at the GIL cost more than the
    translation (1.41-1.64 vs 2.09-2.37 ms CPU per callback, bench/results/2026-12-02-speed.md).
    """

    remote = False

    def __init__(self, store: FilesystemMediaStore) -> None:
        self._store = store
        self._puts: list[tuple[bytes, str]] = []

    def store(self, content: bytes, content_type: str | None, filename: str | None) -> Media:
        digest, media = self._store.named(content, content_type, filename)
        self._puts.append((content, digest))
        return media

    def load(self, uri: str) -> bytes:
        return self._store.load(uri)

    @property
    def parts(self) -> list[tuple[bytes, str]]:
        """What `store` was given, (content, sha256), to be written by `put_all` (the
        endpoint's: connector/put_batches.py)."""
        return self._puts


def _write_all(fd: int, content: bytes) -> None:
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view) :]


def _holds(path: str, size: int, digest: str) -> bool:
    """Whether `path` holds exactly the content named `digest`. It may not be on disk yet (a
    crashed attempt renamed it into place): put_all's sync covers it too, and the
    acknowledgement then means what it says."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        if os.fstat(fd).st_size != size:
            return False
        with open(fd, "rb", closefd=False) as existing:
            if hashlib.sha256(existing.read()).hexdigest() != digest:
                return False
    finally:
        os.close(fd)
    return True


def _fsync(path: str, flags: int = 0) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: str) -> None:
    _fsync(directory, os.O_DIRECTORY)


# The request path's budget: a callback's deadline is 8 s by default and the provider retries a
# 503. obstore's own default retries for up to 3 minutes, so a stopped or hung server would hold
# every callback past its deadline; with these a put gives up within ~7 s (retries start within
# 4 s, each request at most 3 s: 5 MiB parts need 1.7 MB/s).
CONNECT_TIMEOUT = timedelta(seconds=2)
REQUEST_TIMEOUT = timedelta(seconds=3)
RETRY = {
    "max_retries": 2,
    "retry_timeout": timedelta(seconds=4),
    "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=1)},
}


def s3_options(config: S3StoreConfig, env: Mapping[str, str]) -> dict[str, Any]:
    """obstore's S3Store settings for `config` (keyword arguments; secrets resolved).

    Without access keys obstore follows the default chain itself: AWS_* variables, web
    identity (IRSA's AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN), ECS, the instance profile.
    """
    settings: dict[str, Any] = {"region": config.region}
    client: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, "timeout": REQUEST_TIMEOUT}
    if config.endpoint_url is not None:
        settings["endpoint"] = config.endpoint_url
        # Plain http only for a server the operator named (S3Proxy, an on-prem MinIO).
        client["allow_http"] = config.endpoint_url.startswith("http://")
    if config.server_side_encryption is not None:
        settings["server_side_encryption"] = config.server_side_encryption
        if config.kms_key_id is not None:
            settings["sse_kms_key_id"] = config.kms_key_id
    if config.access_key_id is not None and config.secret_access_key is not None:
        settings["access_key_id"] = config.access_key_id.resolve(env, "media.s3.access_key_id")
        settings["secret_access_key"] = config.secret_access_key.resolve(
            env, "media.s3.secret_access_key"
        )
    return {"config": settings, "client_options": client, "retry_config": RETRY}


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def s3_key(uri: str, bucket: str, prefix: str) -> str:
    """The key of `uri` when it names an object of this store (its bucket, under its prefix)."""
    parsed = urlparse(uri)
    key = parsed.path.removeprefix("/")
    if parsed.scheme != "s3" or parsed.netloc != bucket or not key.startswith(prefix) or not key:
        raise ValueError(f"{uri} is not in the media store s3://{bucket}/{prefix}")
    return key


def public_url(base: str, key: str) -> str:
    return f"{base.rstrip('/')}/{quote(key, safe='/')}"


class S3MediaStore:
    """Content-addressed objects in one bucket, through obstore (Rust's object_store).

    obstore over minio and aiobotocore, measured against S3Proxy on this 2-core box (300 puts
    of 20-300 KB, one at a time): p50 2.0 / 2.4 / 3.5 ms, client CPU per put 0.36 / 0.81 /
    1.9 ms; it has sync and async APIs, and aiobotocore needed checksums turned off for S3Proxy.

    Puts are idempotent by a HEAD first, not a conditional put: a provider's retry (the usual
    repeat) then costs one HEAD (1.4 ms, 0.14 ms CPU) instead of uploading the body again to be
    told 412, and HEAD works on every S3-compatible server (If-None-Match on PUT does not on
    all). Two racing first copies both PUT the same bytes under the same key: harmless.
    """

    remote = True

    def __init__(self, config: S3StoreConfig, env: Mapping[str, str]) -> None:
        self.bucket = config.bucket
        self.prefix = config.prefix
        self._public_url_base = config.public_url_base
        self._presign = (
            timedelta(seconds=config.presign_seconds) if config.presign_seconds else None
        )
        self._s3 = S3Store(config.bucket, **s3_options(config, env))

    def store(self, content: bytes, content_type: str | None, filename: str | None) -> Media:
        digest = hashlib.sha256(content).hexdigest()
        key = content_key(self.prefix, digest)
        try:
            # A different size under our key is someone else's write: replaced by ours.
            if self._size(key) != len(content):
                obstore.put(
                    self._s3,
                    key,
                    content,
                    attributes={"Content-Type": content_type or DEFAULT_CONTENT_TYPE},
                )
            url = self.url_for(key)
        except ObjectStoreError as exc:
            raise MediaStoreError(f"{s3_uri(self.bucket, key)}: {_first_line(exc)}") from None
        return Media(
            uri=s3_uri(self.bucket, key),
            content_type=content_type,
            size=len(content),
            sha256=digest,
            filename=filename,
            url=url,
        )

    def load(self, uri: str) -> bytes:
        key = s3_key(uri, self.bucket, self.prefix)
        try:
            content = bytes(obstore.get(self._s3, key).bytes())
        except (ObjectStoreError, FileNotFoundError) as exc:  # obstore: not found is the latter
            raise MediaStoreError(f"{uri}: {_first_line(exc)}") from None
        return checked(content, key)

    def _size(self, key: str) -> int | None:
        try:
            return obstore.head(self._s3, key)["size"]
        except FileNotFoundError:
            return None

    def url_for(self, key: str) -> str | None:
        if self._public_url_base is not None:
            return public_url(self._public_url_base, key)
        if self._presign is not None:
            return obstore.sign(self._s3, "GET", key, self._presign)
        return None


def _first_line(exc: BaseException) -> str:
    # obstore's messages go on with a multi-line debug dump of the request.
    return str(exc).strip().split("\n", 1)[0]
