"""Prints the Debian entries apt is configured with, one `deb URI SUITE COMPONENTS` line each,
for mmdebstrap: the stand-in base comes from the same mirror (and snapshot) as this machine.

Reads /etc/apt/sources.list and /etc/apt/sources.list.d/*.list|*.sources; keeps `deb` entries
whose suite is CODENAME, CODENAME-updates or CODENAME-security (other vendors' repositories,
whose suites are named differently, are left out). Exit 1 if none is found.
"""

from __future__ import annotations

import sys
from pathlib import Path

APT = Path("/etc/apt")


def one_line_entries(text: str) -> list[tuple[str, str, str]]:
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        words = line.split()[1:]
        if words and words[0].startswith("["):  # options: [signed-by=... arch=...]
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = words[1:]
        if len(words) >= 3:
            out.append((words[0], words[1], " ".join(words[2:])))
    return out


def deb822_entries(text: str) -> list[tuple[str, str, str]]:
    out = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for raw in stanza.splitlines():
            if raw.startswith("#") or ":" not in raw:
                continue
            key, _, value = raw.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                out.append((uri, suite, fields.get("components", "main")))
    return out


def main() -> int:
    codename = sys.argv[1]
    wanted = {codename, f"{codename}-updates", f"{codename}-security"}
    entries: list[tuple[str, str, str]] = []
    files = [APT / "sources.list", *sorted((APT / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        if path.name.endswith(".list"):
            entries += one_line_entries(path.read_text())
        elif path.name.endswith(".sources"):
            entries += deb822_entries(path.read_text())
    seen = set()
    for uri, suite, components in entries:
        if suite in wanted and (uri, suite) not in seen:
            seen.add((uri, suite))
            print(f"deb {uri} {suite} {components}")
    return 0 if seen else 1


if __name__ == "__main__":
    sys.exit(main())
