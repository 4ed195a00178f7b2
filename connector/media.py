"""Where inline media (parts carried in the callback body) are kept, referenced from records."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse
from urllib.request import url2pathname

from connector.record import Media


class MediaStore(Protocol):
    def store(self, content: bytes, content_type: str | None, filename: str | None) -> Media: ...

    def load(self, uri: str) -> bytes: ...


class FilesystemMediaStore:
    """Content-addressed files under `root`: the same bytes always land at the same path.

    That makes a provider's retry idempotent (no second copy) and lets consumers check content
    against the record's sha256.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def store(self, content: bytes, content_type: str | None, filename: str | None) -> Media:
        digest = hashlib.sha256(content).hexdigest()
        path = self.root / digest[:2] / digest
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a reader never sees a half-written file.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
            with os.fdopen(fd, "wb") as out:
                out.write(content)
            os.replace(tmp, path)
        return Media(
            uri=path.as_uri(),
            content_type=content_type,
            size=len(content),
            sha256=digest,
            filename=filename,
        )

    def load(self, uri: str) -> bytes:
        """Content this store wrote, by its URI (for dead-letter replay)."""
        path = Path(url2pathname(urlparse(uri).path)).resolve()
        if urlparse(uri).scheme != "file" or not path.is_relative_to(self.root):
            raise ValueError(f"{uri} is not in the media store at {self.root}")
        return path.read_bytes()
