"""The OpenMarket fuzz stage (families and property in tests/fuzzing.py; `python -m bench.fuzz
--provider openmarket` runs them for longer), and: whatever the framing, inline media are stored
byte for byte."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import fuzzing

test_refused_cleanly_or_produced = fuzzing.ci_stage("openmarket")


@settings(max_examples=fuzzing.CI_EXAMPLES, deadline=None, derandomize=True, database=None)
@given(
    boundary=fuzzing.RFC_BOUNDARIES,
    nl=st.sampled_from(["\r\n", "\n"]),
    blank=st.booleans(),
    closed=st.booleans(),
    media=st.lists(
        st.tuples(
            st.binary(min_size=1, max_size=400),
            st.sampled_from(["base64", "Base64", None]),
            st.integers(4, 80),
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_media_round_trip(
    boundary: str,
    nl: str,
    blank: bool,
    closed: bool,
    media: list[tuple[bytes, str | None, int]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Whatever the framing, each part's bytes are stored exactly, in order."""
    details = {"type": "MO", "moId": 9, "source": "447800000001", "destinations": ["88600"]}
    lines = [f"--{boundary}", "Content-Type: application/json", "Content-Id: main"]
    lines += [""] * blank + [json.dumps(details)]
    for i, (content, encoding, width) in enumerate(media):
        encoded = base64.b64encode(content).decode()
        lines += [f"--{boundary}", "Content-Type: application/octet-stream", f"Content-Id: p{i}"]
        lines += [f"Content-Transfer-Encoding: {encoding}"] * (encoding is not None)
        lines += [""] * blank + [encoded[j : j + width] for j in range(0, len(encoded), width)]
    lines += [f"--{boundary}--"] * closed
    sample = fuzzing.Sample(
        (nl.join(lines) + nl).encode(), f'multipart/mixed; boundary="{boundary}"'
    )
    stats = fuzzing.Stats()
    [event] = fuzzing.check("openmarket", sample, tmp_path_factory.getbasetemp(), stats)
    assert [m.filename for m in event.media] == [f"p{i}" for i in range(len(media))]
    for stored, (content, _, _) in zip(event.media, media, strict=True):
        assert stored.sha256 == hashlib.sha256(content).hexdigest()
        assert Path(stored.uri.removeprefix("file://")).read_bytes() == content
