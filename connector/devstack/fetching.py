"""Downloading Kafka jars and Apicurio Registry from Maven Central into a shared cache."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

log = logging.getLogger("connector.devstack")

REGISTRY_VERSION = "3.3.3"
REGISTRY_ARTIFACT = f"io.apicurio:apicurio-registry-app:{REGISTRY_VERSION}:tar.gz:all"

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


def _fetch_registry(cache: Path) -> None:
    target = registry_dir(cache)
    if is_complete(target):
        return
    log.info("fetching Apicurio Registry %s into %s", REGISTRY_VERSION, target)
    download = cache / f"{target.name}.download"
    shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(download, ignore_errors=True)
    download.mkdir(parents=True)
    try:
        # cwd is the empty download dir so Maven never picks up some unrelated pom.xml.
        _mvn(
            ["dependency:copy", f"-Dartifact={REGISTRY_ARTIFACT}", f"-DoutputDirectory={download}"],
            cwd=download,
        )
        (archive,) = download.glob("*.tar.gz")
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    finally:
        # The archive stays in ~/.m2 anyway; no need to keep a second 158 MB copy.
        shutil.rmtree(download, ignore_errors=True)
    if not (target / "quarkus-run.jar").is_file():
        raise RuntimeError(f"{REGISTRY_ARTIFACT} did not contain quarkus-run.jar")
    (target / COMPLETE_MARKER).touch()


def fetch(cache: Path | None = None) -> None:
    """Download (once) the Kafka jars and Apicurio Registry into `cache`."""
    cache = default_cache() if cache is None else cache.expanduser().resolve()
    with file_lock(cache / ".lock"):
        _fetch_kafka(cache)
        _fetch_registry(cache)
