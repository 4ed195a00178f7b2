"""Downloading Kafka jars, Apicurio Registry and S3Proxy from Maven Central into a shared cache."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

log = logging.getLogger("connector.devstack")

REGISTRY_VERSION = "3.3.3"
REGISTRY_ARTIFACT = f"io.apicurio:apicurio-registry-app:{REGISTRY_VERSION}:tar.gz:all"
S3PROXY_VERSION = "2.9.0"
# One self-contained jar (40 MB, Java 17 bytecode); the filesystem backend needs nothing else.
S3PROXY_ARTIFACT = f"org.gaul:s3proxy:{S3PROXY_VERSION}:jar:jar-with-dependencies"

# Written last, so a directory without it is an interrupted download and is redone.
COMPLETE_MARKER = ".complete"


def default_cache() -> Path:
    """$MMS_DEVSTACK_CACHE, else ~/.cache/mms-connector/devstack (honouring XDG_CACHE_HOME)."""
    if env := os.environ.get("MMS_DEVSTACK_CACHE"):
        return Path(env).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser().resolve() / "mms-connector" / "devstack"


def _kafka_pom() -> bytes:
    return resources.files(__package__).joinpath("kafka-pom.xml").read_bytes()


def kafka_dir(cache: Path) -> Path:
    # Keyed by the pom's content so checkouts pinning different Kafka versions can share a cache.
    digest = hashlib.sha256(_kafka_pom()).hexdigest()[:12]
    return cache / f"kafka-{digest}"


def kafka_libs(cache: Path) -> Path:
    return kafka_dir(cache) / "libs"


def registry_dir(cache: Path) -> Path:
    return cache / f"apicurio-registry-{REGISTRY_VERSION}"


def s3proxy_dir(cache: Path) -> Path:
    return cache / f"s3proxy-{S3PROXY_VERSION}"


def s3proxy_jar(cache: Path) -> Path:
    return s3proxy_dir(cache) / f"s3proxy-{S3PROXY_VERSION}-jar-with-dependencies.jar"


def is_complete(directory: Path) -> bool:
    return (directory / COMPLETE_MARKER).is_file()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock on `path`, held across processes until the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another devstack process (lock %s)", path)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _mvn(args: list[str], cwd: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("Maven (`mvn`) is not on PATH; the devstack fetches from Maven Central")
    done = subprocess.run(
        [mvn, "-q", "-B", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise RuntimeError(f"mvn {' '.join(args)} failed ({done.returncode}):\n{tail}")


def _fetch_kafka(cache: Path) -> None:
    target = kafka_dir(cache)
    if is_complete(target):
        return
    log.info("fetching Kafka jars into %s", target)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    pom = target / "pom.xml"
    pom.write_bytes(_kafka_pom())
    _mvn(
        [
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={kafka_libs(cache)}",
            "-DincludeScope=runtime",
        ],
        cwd=target,
    )
    (target / COMPLETE_MARKER).touch()


def _fetch_artifact(
    cache: Path, target: Path, artifact: str, install: Callable[[Path], None]
) -> None:
    """Copy `artifact` with Maven into a fresh download dir, `install` it from there to target."""
    if is_complete(target):
        return
    log.info("fetching %s into %s", artifact, target)
    download = cache / f"{target.name}.download"
    shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(download, ignore_errors=True)
    download.mkdir(parents=True)
    try:
        # cwd is the empty download dir so Maven never picks up some unrelated pom.xml.
        _mvn(
            ["dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={download}"],
            cwd=download,
        )
        install(download)
    finally:
        # The artifact stays in ~/.m2 anyway; no need to keep a second copy (158 MB registry).
        shutil.rmtree(download, ignore_errors=True)
    (target / COMPLETE_MARKER).touch()


def _fetch_registry(cache: Path) -> None:
    target = registry_dir(cache)

    def install(download: Path) -> None:
        (archive,) = download.glob("*.tar.gz")
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        if not (target / "quarkus-run.jar").is_file():
            raise RuntimeError(f"{REGISTRY_ARTIFACT} did not contain quarkus-run.jar")

    _fetch_artifact(cache, target, REGISTRY_ARTIFACT, install)


def _fetch_s3proxy(cache: Path) -> None:
    jar = s3proxy_jar(cache)

    def install(download: Path) -> None:
        copied = download / jar.name
        if not copied.is_file():
            raise RuntimeError(f"Maven did not copy {S3PROXY_ARTIFACT} as {jar.name}")
        jar.parent.mkdir(parents=True)
        copied.rename(jar)

    _fetch_artifact(cache, s3proxy_dir(cache), S3PROXY_ARTIFACT, install)


def fetch(cache: Path | None = None) -> None:
    """Download (once) the Kafka jars, Apicurio Registry and S3Proxy into `cache`."""
    cache = default_cache() if cache is None else cache.expanduser().resolve()
    with file_lock(cache / ".lock"):
        _fetch_kafka(cache)
        _fetch_registry(cache)
        _fetch_s3proxy(cache)
