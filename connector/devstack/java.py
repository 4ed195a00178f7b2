"""Locating a Java runtime new enough for each devstack service."""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

# Where JDKs usually live when they are not on PATH (Debian/Ubuntu, macOS).
JVM_GLOBS = (
    "/usr/lib/jvm/*/bin/java",
    "/Library/Java/JavaVirtualMachines/*/Contents/Home/bin/java",
)

_VERSION_RE = re.compile(r'version "(\d+)(?:\.(\d+))?')


def parse_java_major(version_output: str) -> int | None:
    """Major version from `java -version` output, e.g. 17 for 'openjdk version "17.0.15"'."""
    match = _VERSION_RE.search(version_output)
    if match is None:
        return None
    major = int(match[1])
    # Java 8 and older report themselves as "1.8.0_x".
    if major == 1 and match[2] is not None:
        return int(match[2])
    return major


@functools.cache
def java_major(java: Path) -> int | None:
    """Major version of the given java binary, or None if it does not run."""
    try:
        done = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    # `java -version` writes to stderr; some wrappers use stdout.
    return parse_java_major(done.stderr + done.stdout)


def _as_java_binary(value: str) -> Path:
    path = Path(value).expanduser()
    return path / "bin" / "java" if path.is_dir() else path


def find_java(min_major: int, purpose: str, *, override_env: str | None = None) -> Path:
    """A java binary of at least `min_major`.

    Order: `override_env` (a java binary or a JDK home; must qualify), JAVA_HOME, `java` on
    PATH, then the highest qualifying version among JVM_GLOBS.
    """
    if override_env and (override := os.environ.get(override_env)):
        java = _as_java_binary(override)
        major = java_major(java)
        if major is None or major < min_major:
            raise RuntimeError(
                f"{override_env}={override} is not a Java {min_major}+ runtime "
                f"(found {major or 'nothing runnable'}); {purpose} needs Java {min_major}+"
            )
        return java

    preferred: list[Path] = []
    if java_home := os.environ.get("JAVA_HOME"):
        preferred.append(Path(java_home) / "bin" / "java")
    if on_path := shutil.which("java"):
        preferred.append(Path(on_path))
    for java in preferred:
        major = java_major(java)
        if major is not None and major >= min_major:
            return java

    scanned = [
        (major, Path(path))
        for pattern in JVM_GLOBS
        for path in sorted(glob.glob(pattern))
        if (major := java_major(Path(path))) is not None and major >= min_major
    ]
    if scanned:
        return max(scanned, key=lambda found: found[0])[1]

    where = ", ".join(([f"${override_env}"] if override_env else []) + ["$JAVA_HOME", "PATH"])
    hint = f" or set {override_env} to its java binary" if override_env else ""
    raise RuntimeError(
        f"{purpose} needs Java {min_major} or newer, but none was found "
        f"(looked at {where}, {', '.join(JVM_GLOBS)}). Install a Java {min_major}+ runtime, "
        f"e.g. `apt-get install openjdk-{min_major}-jre-headless` or Eclipse Temurin "
        f"{min_major}, and put it on PATH or JAVA_HOME{hint}."
    )
