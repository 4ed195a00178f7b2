"""Hostile-input fuzzing shared by the CI stage (tests/unit/test_fuzz_*.py) and the long run
(bench/fuzz.py): per provider, families of strategies that mutate the real payloads in
tests/payloads/, and the one property every example must keep.

The property (`check`): the callback goes through `connector.pipeline.translate`, exactly as
the endpoint runs it, and either is refused with a `Refusal` of the parsers' own (not one of
the safety nets in `NET_CODES`, which mean a parser crashed or built a record that cannot be
produced), or yields records that each encode with the current Avro schema and decode back
unchanged, keyed by a non-blank owner, within the sample's budgets (`Budgets`: config keys, set
on the route as the app would, tests/harness.py).

Hostile means: fields deleted or given junk, huge or duplicated fields, control characters
(\\x00, \\x1e, \\x1f) and lone surrogates (`\\ud800` JSON escapes), integers past 2**64, odd
charsets (utf-7, unicode_escape) in OpenMarket text parts, long and degenerate boundaries, and
lists of events, media, recipients, parts and elements just below, at and past the budgets.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote_plus

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from lxml import etree

from connector import pipeline
from connector.codec import current_schema
from connector.providers.contract import Refusal
from connector.providers.fields import MAX_JSON_DEPTH
from connector.record import MmsEvent
from tests import harness
from tests.helpers import callback

SCHEMA = fastavro.parse_schema(json.loads(current_schema()))


@dataclass(frozen=True, slots=True)
class Budgets:
    """The budgets a sample is translated under: config keys, each given to the providers whose
    config takes it (max_parts and max_part_bytes are OpenMarket's own options)."""

    max_parts: int = harness.default(None, "max_parts")
    max_part_bytes: int = harness.default(None, "max_part_bytes")
    max_elements: int = harness.default(None, "max_elements")
    max_events: int = harness.default(None, "max_events")
    max_media: int = harness.default(None, "max_media")
    max_recipients: int = harness.default(None, "max_recipients")

    def settings(self, provider: str) -> dict[str, int]:
        keys = harness.budget_keys(provider)
        return {k: v for k, v in dataclasses.asdict(self).items() if k in keys}


LIMITS = Budgets()
# Refusals that are not the parsers' own: pipeline.translate's net for a parser that raised
# anything else, and its check that a record encodes.
NET_CODES = frozenset({"untranslatable", "record_unencodable"})
# Examples per family in CI: a few seconds per provider, all four within ~20 s.
CI_EXAMPLES = 50


# --- the property ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One callback to try: body, Content-Type, other headers, and the budgets to apply."""

    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()
    limits: Budgets = LIMITS
    default_country: str | None = None

    def __repr__(self) -> str:
        # Bodies run to megabytes: hypothesis prints the falsifying example.
        shown = self.body if len(self.body) <= 2000 else self.body[:2000] + b"..."
        return (
            f"Sample(body={shown!r} ({len(self.body)} bytes), content_type={self.content_type!r}"
            f", headers={self.headers!r}, limits={self.limits!r}, "
            f"default_country={self.default_country!r})"
        )


@dataclass
class Stats:
    """What a run saw; `failure` is the last sample that broke the property (hypothesis
    replays the shrunk one last)."""

    examples: int = 0
    records: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    failure: Sample | None = None


def check(provider: str, sample: Sample, media_root: Path, stats: Stats) -> list[MmsEvent]:
    """Translate `sample` as the endpoint does; fail unless it is refused cleanly or every
    record it yields can be produced."""
    stats.examples += 1
    try:
        events, code = _translate(provider, sample, media_root)
    except BaseException:
        stats.failure = sample
        raise
    if code is None:
        stats.records += len(events)
    else:
        stats.refusals[code] += 1
    return events


def _translate(
    provider: str, sample: Sample, media_root: Path
) -> tuple[list[MmsEvent], str | None]:
    """The records of `sample` (checked), or none and the refusal's code."""
    settings: dict[str, object] = dict(sample.limits.settings(provider))
    if sample.default_country is not None:
        settings["default_country"] = sample.default_country
    route = harness.route(provider, media_root, settings)
    headers = {"Content-Type": sample.content_type, **dict(sample.headers)}
    try:
        outgoing = pipeline.translate(route, callback(sample.body, headers))
    except Refusal as refusal:
        if refusal.code in NET_CODES:
            # What the net caught, with its traceback when there is one.
            raise AssertionError(f"{refusal.code}: {refusal.detail}") from refusal.__cause__
        assert refusal.code and 400 <= refusal.status <= 599, refusal
        return [], refusal.code
    limits = sample.limits
    assert len(outgoing) <= limits.max_events, f"{len(outgoing)} records"
    for out in outgoing:
        event = out.event
        assert out.key == event.owner and event.owner.strip(), f"Kafka key {out.key!r}"
        assert event.provider == provider and uuid.UUID(event.event_id)
        assert len(event.media) <= limits.max_media, f"{len(event.media)} media"
        recipients = len(event.to) + len(event.cc) + len(event.bcc)
        assert recipients <= limits.max_recipients, f"{recipients} recipients"
        record = out.value()
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, SCHEMA, record)
        buf.seek(0)
        assert fastavro.schemaless_reader(buf, SCHEMA, SCHEMA) == record
    return [out.event for out in outgoing], None


# --- running a family ------------------------------------------------------------------------


def family_seed(provider: str, family: str) -> int:
    """The fixed seed of a family in CI, so every CI run draws the same examples."""
    return zlib.crc32(f"{provider}/{family}".encode())


def run(
    target: Target, family: str, *, seed: int, examples: int, media_root: Path, stats: Stats
) -> None:
    """Draw `examples` samples of `family` from `seed` and check each; raises (after shrinking)
    on the first that breaks the property. The same seed and count draw the same samples."""

    @hypothesis_seed(seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(target.families[family])
    def fuzz(sample: Sample) -> None:
        check(target.name, sample, media_root, stats)

    fuzz()


def ci_stage(provider: str) -> Callable[[str, Path], None]:
    """The CI fuzz stage of a provider: a test per family, each from its fixed seed."""
    target = TARGETS[provider]

    @pytest.mark.parametrize("family", sorted(target.families))
    def test_refused_cleanly_or_produced(family: str, tmp_path: Path) -> None:
        run(
            target,
            family,
            seed=family_seed(provider, family),
            examples=CI_EXAMPLES,
            media_root=tmp_path,
            stats=Stats(),
        )

    return test_refused_cleanly_or_produced


@dataclass(frozen=True)
class Target:
    """One provider's strategies, by family name."""

    name: str
    families: Mapping[str, st.SearchStrategy[Sample]]


# --- hostile values --------------------------------------------------------------------------

CONTROL = st.sampled_from(["\x00", "\x1f", "\x1e", "\r\n", "\x7f", "\x85", "\u2028", "\ufeff"])
# Lone surrogates: json.dumps writes them as `\ud800` escapes.
SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udbff", "\udc00b"])
# Huge values: past a Kafka message (1 MB) at the top.
HUGE = st.builds(
    str.__mul__,
    st.sampled_from(["9", "a", "é", "\x00", "😀", "+1"]),
    st.sampled_from([256, 4096, 70_000, 1_100_000]),
)
# Mostly plain text, so that records come out too; now and then hostile.
HOSTILE_TEXT = st.one_of(
    st.text(max_size=30),
    st.text(max_size=30),
    st.lists(st.text(max_size=8) | CONTROL, max_size=5).map("".join),
    CONTROL | SURROGATES | HUGE,
)
# Past 64 bits (orjson would read them as floats), near Avro's, and near int's 4,300-digit
# limit (past it, in SNIPPETS: no int past it has a repr).
BIG_INTS = st.sampled_from(
    [2**31, 2**63 - 1, 2**63, 2**64, 2**64 + 1, -(2**63) - 1, 10**30, 10**400, 10**4000]
)
# NaN and infinities are no JSON: SNIPPETS puts them into bodies.
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
SCALARS = st.none() | st.booleans() | st.integers() | BIG_INTS | FLOATS | HOSTILE_TEXT
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
TIMES = st.sampled_from(
    ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "2024-02-29T23:59:59.999999Z",
     "2015-08-04 21:50:12", "20150804T215012Z", "2015-08-04T21:50:12.5+0530", "", " ",
     "2024-13-01T00:00:00Z", "2024-06-01T12:00:00\x00Z"]
) | st.datetimes(timezones=st.timezones()).map(lambda at: at.isoformat())  # fmt: skip
NUMBERS = st.sampled_from(
    ["+19195551000", "19195551000", "9195551000", "28444", "+1 (919) 555-1000", "+", "", " ",
     "٣٣٣", "+447700900123", "1" * 40, "+1919555\x001000", "\x1f", "9" * 5000]
) | st.text("+0123456789 -()", max_size=20)  # fmt: skip
URLS = st.sampled_from(
    ["https://h.example/a/b.jpg", "https://h.example/", "https://h.example", "b.jpg", "",
     "https://h.example/%ed%a0%80.png", "https://h.example/a?x=/y.png#f", "file:///etc/passwd",
     "javascript:alert(1)", "data:image/png;base64,AAAA", "https://h.example/../../x",
     "https://h.example/a%00b.png", "https://h.example/a\x1fb", "HTTPS://h.example/%2e%2e",
     "https://h.example/" + "n" * 400]
) | HOSTILE_TEXT  # fmt: skip
COUNTS = st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, 2**63 - 1]) | st.integers() | BIG_INTS


def around(limit: int) -> st.SearchStrategy[int]:
    """Sizes just below, at and past a budget (and far past it)."""
    return st.sampled_from([max(limit - 1, 0), limit, limit + 1, limit * 3])


# Mostly the defaults; sometimes budgets small enough for ordinary payloads to hit.
SMALL_LIMITS = st.builds(
    Budgets,
    max_parts=st.integers(1, 6),
    max_part_bytes=st.integers(1, 4096),
    max_elements=st.integers(1, 60),
    max_events=st.integers(1, 3),
    max_media=st.integers(1, 3),
    max_recipients=st.integers(1, 3),
)
LIMIT_CHOICES = st.just(LIMITS) | st.just(LIMITS) | st.just(LIMITS) | SMALL_LIMITS
COUNTRIES = st.sampled_from([None, "US", "GB", "AU"])


# --- JSON bodies -----------------------------------------------------------------------------


class Seeds(list[Any]):
    """Real payloads; short in hypothesis's reports, which print a strategy's arguments."""

    def __init__(self, items: list[Any], where: str) -> None:
        super().__init__(items)
        self.where = where

    def __repr__(self) -> str:
        return f"<{len(self)} payloads from tests/payloads/{self.where}>"


def json_seeds(provider_dir: str) -> Seeds:
    files = [f for f in harness.payload_files(provider_dir) if f.suffix == ".json"]
    return Seeds([json.loads(f.read_bytes()) for f in files], provider_dir)


@st.composite
def json_text(draw: st.DrawFn, value: Any) -> bytes:
    """`value` as a JSON body, as a hostile sender might write it: lone surrogates as `\\ud800`
    escapes or raw (invalid UTF-8), a member repeated before or after the original, or an
    integer past 64 bits beside the rest (which parsers may read on another path)."""
    obj = value[0] if isinstance(value, list) and value else value
    how = draw(st.sampled_from(["plain", "plain", "raw", "repeated", "long integer"]))
    if how == "raw":
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if how == "plain" or not isinstance(obj, dict) or not obj:
        return json.dumps(value).encode()
    key = draw(st.sampled_from(sorted(obj)))
    member = f"{json.dumps(key)}: {json.dumps(draw(JSON_VALUES))}"
    if how == "long integer":
        member = f'"{draw(st.text("xyz", min_size=1, max_size=3))}": {2**64}'
    text = json.dumps(obj)
    # Repeated members: orjson keeps the last one.
    text = f"{{{member}, {text[1:]}" if draw(st.booleans()) else f"{text[:-1]}, {member}}}"
    if obj is not value:
        text = f"[{', '.join([text, *(json.dumps(v) for v in value[1:])])}]"
    return text.encode()


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    """obj["a"]["b"] = value for "a.b", making the parents objects where they are not."""
    *parents, last = path.split(".")
    node = obj
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[last] = value


def delete_path(obj: dict[str, Any], path: str) -> None:
    *parents, last = path.split(".")
    node: Any = obj
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)


@st.composite
def mutated_json(
    draw: st.DrawFn, seeds: Seeds, fields: Mapping[str, st.SearchStrategy[Any]]
) -> Any:
    """A real payload (an object, or each object of a list) with some fields deleted, given
    values of their own kind or junk of any kind, and unknown fields added."""
    value = json.loads(json.dumps(draw(st.sampled_from(seeds))))
    objects = value if isinstance(value, list) else [value]
    for obj in objects:
        for path in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2)):
            delete_path(obj, path)
        for path in draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=4)):
            set_path(obj, path, draw(fields[path] | JSON_VALUES))
        for name, extra in draw(st.lists(st.tuples(HOSTILE_TEXT, JSON_VALUES), max_size=2)):
            obj[name] = extra
    return value


def padded(value: Any, extra: int, kind: str) -> Any:
    """`value` carrying `extra` more JSON containers (or list items) in an unknown field."""
    filler: list[Any] = [{}] * extra if kind == "containers" else [0] * extra
    if isinstance(value, list):
        return [*value, {"filler": filler}]
    return {**value, "filler": filler}


@st.composite
def budget_json(
    draw: st.DrawFn, seeds: Seeds, lists: Mapping[str, tuple[int, str]], events: bool
) -> Any:
    """A real payload with lists around the budgets: `lists` maps a field path to its budget
    and the prefix of its (distinct) items;
    `events` repeats the payload's events around `max_events`; extra containers or items
    around `max_elements`."""
    value = json.loads(json.dumps(draw(st.sampled_from(seeds))))
    objects = value if isinstance(value, list) else [value]
    for path, (limit, prefix) in lists.items():
        for obj in objects:
            if draw(st.booleans()):
                set_path(obj, path, [f"{prefix}{i}" for i in range(draw(around(limit)))])
    if events and draw(st.booleans()):
        n = draw(around(LIMITS.max_events))
        value = [_renamed(objects[i % len(objects)], i) for i in range(n)]
    if draw(st.booleans()):
        value = padded(
            value,
            draw(around(LIMITS.max_elements)),
            draw(st.sampled_from(["containers", "items"])),
        )
    return value


# Prefixes of the items of budget lists.
MEDIA_ITEM = "https://h.example/m/"
NUMBER_ITEM = "+1919555"


def _renamed(event: Any, i: int) -> Any:
    """A copy of a Bandwidth v2 event with its own message id."""
    copy = json.loads(json.dumps(event))
    if isinstance(copy.get("message"), dict):
        copy["message"]["id"] = f"{copy['message'].get('id')}-{i}"
    return copy


def json_samples(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Sample]:
    return st.builds(
        Sample,
        body=values.flatmap(json_text),
        content_type=st.sampled_from(["application/json", "application/json; charset=utf-8"]),
        limits=LIMIT_CHOICES,
        default_country=COUNTRIES,
    )


# --- bytes -----------------------------------------------------------------------------------

SNIPPETS = st.sampled_from(
    [b"\r\n", b"\n", b"--", b"=", b" ", b":", b"\r\n\r\n", b"\x00", b"\x1f", b"\x1e", b"\\ud800",
     b"\xed\xa0\x80", b"\xff", b"{", b"[", b"}", b"]", b",", b'"', b"<", b">", b"]]>", b"&amp;",
     b"&#0;", b"<!DOCTYPE x>", b"18446744073709551616", b"9" * 5000, b"1e400", b"NaN"]
) | st.binary(max_size=8)  # fmt: skip


@st.composite
def mutated_bytes(draw: st.DrawFn, seeds: Seeds) -> tuple[bytes, str]:
    """A real body with bytes flipped, cut, inserted, deleted or repeated (up to thousands of
    times: duplicated fields and parts, budgets reached by repetition)."""
    body, content_type = draw(st.sampled_from(seeds))
    buf = bytearray(body)
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(buf)))
        match draw(st.sampled_from(["flip", "truncate", "insert", "delete", "repeat"])):
            case "flip" if at < len(buf):
                buf[at] ^= 1 << draw(st.integers(0, 7))
            case "truncate":
                del buf[at:]
            case "insert":
                buf[at:at] = draw(SNIPPETS)
            case "delete":
                del buf[at : at + draw(st.integers(1, 16))]
            case "repeat":
                chunk = buf[at : at + draw(st.integers(1, 200))]
                buf[at:at] = chunk * draw(st.sampled_from([1, 2, 10, 1000]))
    return bytes(buf), content_type


def byte_samples(seeds: Seeds, content_types: st.SearchStrategy[str]) -> st.SearchStrategy[Sample]:
    """Random bytes, and real bodies mutated byte by byte, under their own or any Content-Type."""
    bodies = st.tuples(st.binary(max_size=4096), content_types) | mutated_bytes(seeds)
    # One in five under another Content-Type than its own.
    relabelled = st.tuples(bodies, content_types, st.integers(0, 4)).map(
        lambda t: (t[0][0], t[1] if t[2] == 0 else t[0][1])
    )
    return st.builds(lambda pair, limits: Sample(*pair, limits=limits), relabelled, LIMIT_CHOICES)


def file_seeds(provider_dir: str, content_types: Mapping[str, str]) -> Seeds:
    """The payload files of a provider with the Content-Type of their suffix (or name)."""
    out = []
    for f in harness.payload_files(provider_dir):
        content_type = content_types.get(f.name) or content_types.get(f.suffix)
        if content_type is not None:
            out.append((f.read_bytes(), content_type))
    return Seeds(out, provider_dir)


JSON_CONTENT_TYPES = st.sampled_from(
    ["application/json", "", "text/plain", "application/json; charset=utf-16", ";;"]
)


# --- Bandwidth v1 ----------------------------------------------------------------------------

BANDWIDTH_V1_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "eventType": st.sampled_from(["mms", "sms", "MMS", ""]),
    "direction": st.sampled_from(["in", "out", "IN", "inbound", ""]),
    "state": st.sampled_from(["received", "queued", "sending", "sent", "error", "accepted", ""]),
    "deliveryState": st.sampled_from(["waiting", "delivered", "not-delivered", "unknown", ""]),
    "deliveryCode": COUNTS | st.sampled_from(["0", "000", "720", "999", " ", "-0", "x"]),
    "deliveryDescription": HOSTILE_TEXT,
    "time": TIMES,
    "segmentCount": COUNTS,
    "to": NUMBERS | st.lists(NUMBERS, max_size=4),
    "from": NUMBERS,
    "media": st.lists(URLS, max_size=8) | URLS,
    "text": HOSTILE_TEXT,
    "messageId": HOSTILE_TEXT | COUNTS,
    "applicationId": HOSTILE_TEXT | COUNTS,
    "tag": HOSTILE_TEXT,
    "messageUri": URLS,
}


def bandwidth_target(
    name: str, fields: Mapping[str, st.SearchStrategy[Any]], media: str, to: str, events: bool
) -> Target:
    """A Bandwidth API's families: bytes, fields, and media (at `media`), recipients (at `to`)
    and, where one callback carries several, events around the budgets."""
    where = name.replace("-", "_")
    seeds = json_seeds(where)
    lists = {media: (LIMITS.max_media, MEDIA_ITEM), to: (LIMITS.max_recipients, NUMBER_ITEM)}
    return Target(
        name,
        {
            "bytes": byte_samples(
                file_seeds(where, {".json": "application/json"}), JSON_CONTENT_TYPES
            ),
            "fields": json_samples(mutated_json(seeds, fields)),
            "budgets": json_samples(budget_json(seeds, lists, events=events)),
        },
    )


BANDWIDTH_V1 = bandwidth_target("bandwidth-v1", BANDWIDTH_V1_FIELDS, "media", "to", events=False)


# --- Bandwidth v2 ----------------------------------------------------------------------------

BANDWIDTH_V2_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "type": st.sampled_from(["message-received", "message-sending", "message-delivered"])
    | st.sampled_from(["message-failed", "message-read", ""]),
    "time": TIMES,
    "description": HOSTILE_TEXT,
    "errorCode": COUNTS | HOSTILE_TEXT,
    "to": NUMBERS,
    "carrierName": HOSTILE_TEXT,
    "message": JSON_VALUES,
    "message.id": HOSTILE_TEXT | COUNTS,
    "message.owner": NUMBERS,
    "message.direction": st.sampled_from(["in", "out", "IN", ""]),
    "message.from": NUMBERS,
    "message.to": NUMBERS | st.lists(NUMBERS, max_size=4),
    "message.text": HOSTILE_TEXT,
    "message.media": st.lists(URLS, max_size=8) | URLS,
    "message.applicationId": HOSTILE_TEXT | COUNTS,
    "message.tag": HOSTILE_TEXT,
    "message.segmentCount": COUNTS,
    "message.time": TIMES,
    "message.priority": st.sampled_from(["default", "high", ""]) | HOSTILE_TEXT,
}
BANDWIDTH_V2 = bandwidth_target(
    "bandwidth-v2", BANDWIDTH_V2_FIELDS, "message.media", "message.to", events=True
)


# --- Sinch -----------------------------------------------------------------------------------

SINCH_CONTENT_TYPES = st.sampled_from(
    ["", "application/xml", "Application/XML; charset=UTF-8", "text/xml; charset=utf-16",
     "application/json", "application/json; charset=utf-8", "text/plain",
     "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ";;", "/xml"]
)  # fmt: skip
_SINCH_FILES = file_seeds(
    "sinch",
    {
        ".xml": "application/xml",
        ".json": "application/json",
        ".form": "application/x-www-form-urlencoded",
    },
)
# Text an XML tree can hold: lxml refuses to put anything else into one. Control characters
# and surrogates reach the parser as character references instead (`xml_escape`).
XML_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=30,
)
SINCH_TEXT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "origin": st.sampled_from(["MMS_MO", "MMS_MT", "mms_mo", ""]),
    "code": st.sampled_from(["N401", "N402", ""]),
    "from": NUMBERS,
    "to": NUMBERS,
    "keyword": HOSTILE_TEXT,
    "tracking-id": HOSTILE_TEXT,
    "operator-id": HOSTILE_TEXT,
    "timestamp": TIMES,
    "message-subject": HOSTILE_TEXT,
}
SINCH_JSON_FIELDS = SINCH_TEXT_FIELDS | {
    "content": st.lists(URLS | st.fixed_dictionaries({"file": URLS}) | JSON_VALUES, max_size=8)
}


def xml_escape(value: object) -> str:
    """Text as XML character data; characters XML cannot hold become character references,
    which the parser must refuse (a surrogate is written as its code point)."""
    out = []
    for ch in str(value):
        code = ord(ch)
        if ch in "&<>" or (code < 0x20 and ch not in "\t\n\r") or 0xD800 <= code <= 0xDFFF:
            out.append(f"&#x{code:x};")
        else:
            out.append(ch)
    return "".join(out)


@st.composite
def sinch_xml_fields(draw: st.DrawFn) -> bytes:
    """A real XML postback with elements deleted, given other text or XML attributes, and
    fields added (repeated fields included)."""
    documents = [b for b, ct in _SINCH_FILES if ct == "application/xml" and b"<!DOCTYPE" not in b]
    root = etree.fromstring(draw(st.sampled_from(documents)))
    elements = [e for e in root.iter() if e is not root and isinstance(e.tag, str)]
    replaced: dict[str, str] = {}
    for element in draw(st.lists(st.sampled_from(elements), max_size=3)):
        parent = element.getparent()
        if parent is None:
            continue  # already removed with an ancestor
        if draw(st.booleans()):
            parent.remove(element)
        else:
            name = etree.QName(element).localname
            slot = f"SLOT{len(replaced)}"
            replaced[slot] = xml_escape(draw(SINCH_TEXT_FIELDS.get(name, HOSTILE_TEXT)))
            element.text = slot
            element.attrib.update(draw(st.dictionaries(st.sampled_from(["a", "b"]), XML_TEXT)))
    for name in draw(st.lists(st.sampled_from(sorted(SINCH_TEXT_FIELDS)), max_size=3)):
        slot = f"SLOT{len(replaced)}"
        replaced[slot] = xml_escape(draw(SINCH_TEXT_FIELDS[name]))
        etree.SubElement(root, name).text = slot
    text = etree.tostring(root, encoding="unicode")
    for slot, value in replaced.items():
        text = text.replace(slot, value)
    return b'<?xml version="1.0" encoding="UTF-8"?>' + text.encode("utf-8", "surrogatepass")


# Nested elements named after the real fields, with plausible or hostile text at the leaves.
_XML_TREES = st.recursive(
    st.sampled_from(sorted(SINCH_TEXT_FIELDS)).flatmap(SINCH_TEXT_FIELDS.__getitem__) | XML_TEXT,
    lambda inner: st.lists(
        st.tuples(st.sampled_from([*SINCH_TEXT_FIELDS, "content", "file"]), inner), max_size=5
    ),
    max_leaves=15,
)


def render_xml(children: list[tuple[str, Any]]) -> str:
    return "".join(
        f"<{name}>{render_xml(value) if isinstance(value, list) else xml_escape(value)}</{name}>"
        for name, value in children
    )


@st.composite
def sinch_xml_budgets(draw: st.DrawFn) -> bytes:
    """A valid postback whose content holds files, or whose body holds distinct elements or
    nesting, around the budgets."""
    head = (
        "<postback><origin>MMS_MO</origin><from>14082257140</from><to>28444</to>"
        "<tracking-id>MMS_MO_budget</tracking-id><timestamp>2014-02-03T11:19:49-05:00</timestamp>"
    )
    kind = draw(st.sampled_from(["files", "elements", "names", "depth"]))
    if kind == "files":
        n = draw(around(LIMITS.max_media) | around(LIMITS.max_elements))
        extra = "<content>" + "".join(f"<file>https://h.example/{i}</file>" for i in range(n))
        extra += "</content>"
    elif kind in ("elements", "names"):
        n = draw(around(LIMITS.max_elements))
        extra = "".join(f"<x{i if kind == 'names' else ''}/>" for i in range(n))
    else:
        n = draw(around(MAX_JSON_DEPTH - 1) | st.just(5000))
        extra = "<a>" * n + "</a>" * n
    return f"{head}{extra}</postback>".encode()


XML_CONTENT_TYPES = st.sampled_from(["application/xml", "text/xml", ""])
_SINCH_JSON = json_seeds("sinch")
_XML_POSTBACKS = st.lists(
    st.tuples(st.sampled_from([*SINCH_TEXT_FIELDS, "content"]), _XML_TREES), max_size=12
).map(lambda children: f"<postback>{render_xml(children)}</postback>".encode())
# --- Sinch: Skycore's dialect ------------------------------------------------------------------
# MERGE (fuzzing.patch beside this file does all three; fuzzing_merged_preview.py is the result):
# paste this block into the Sinch section of tests/fuzzing.py just above `SINCH = Target(`, then
# (1) add the three families at the end of SINCH's dict:
#         "skycore_trees": st.builds(
#             Sample, skycore_documents(), XML_CONTENT_TYPES, limits=LIMIT_CHOICES
#         ),
#         "skycore_forms": st.builds(
#             Sample, skycore_forms(), SKYCORE_FORM_CONTENT_TYPES, limits=LIMIT_CHOICES
#         ),
#         "skycore_budgets": skycore_budgets(),
# and (2) give the .form payload files to the Sinch byte family as well:
#     _SINCH_FILES = file_seeds(
#         "sinch",
#         {
#             ".xml": "application/xml",
#             ".json": "application/json",
#             ".form": "application/x-www-form-urlencoded",
#         },
#     )
# TARGETS needs no change (SINCH is in it). The new Skycore payload files join the existing
# bytes and xml_fields families by themselves (file_seeds reads every .xml of the directory).
# form_text, used below, is defined further down (form bodies): it is looked up when drawn.

# Mostly text an XML document can hold, so that records come out too; now and then hostile.
SKYCORE_TEXT = XML_TEXT | XML_TEXT | HOSTILE_TEXT
# Skycore's field names (upper case, some unlike Sinch's) with plausible values of each.
SKYCORE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "ORIGIN": st.sampled_from(["MMS_MO", "MMS_MT", "SMS_MT", "SMS_MO", "mms_mt", ""]),
    "CODE": st.sampled_from(
        ["N401", "N101", "N102", "N202", "N103", "E101", "E102", "E202", "N501", "E502",
         "N003", "E002", "n102", ""]
    ),
    "FROM": NUMBERS,
    "TO": NUMBERS,
    "KEYWORD": SKYCORE_TEXT,
    "SUBJECT": SKYCORE_TEXT,
    "TRACKINGID": SKYCORE_TEXT | NUMBERS,
    "SPID": st.sampled_from(["0001470", "0001570", "000157", "31002", ""]),
    "TIMESTAMP": TIMES | st.sampled_from(["2012-06-07 07:27:34.398593-04", "2012-06-07"]),
    "SENTAS": st.sampled_from(["MMS", "SMS", ""]),
    "STATUS": st.sampled_from(
        ["Message Sent", "Message Sent/Delivered", "Message Failed", "Message Sent/Expired",
         "Message,Sent/Expired", "Message Sent/Not Supported", "Message Sent/Rejected", ""]
    ),
    "MMSID": SKYCORE_TEXT,
    "STATUSDETAILS": SKYCORE_TEXT,
    "HANDSET": SKYCORE_TEXT,
    "AGGREGATORID": SKYCORE_TEXT,
    "HISTORYID": SKYCORE_TEXT,
}  # fmt: skip
# Skycore's documented postbacks, each as a start that translates: an MO, a report from our
# short code, and one without FROM (keyed by its tracking id).
SKYCORE_BASES = [
    {"ORIGIN": "MMS_MO", "CODE": "N401", "FROM": "13217949521", "TO": "74700",
     "TRACKINGID": "MMS_MO_iLnCRrL6", "SPID": "0001470"},
    {"ORIGIN": "MMS_MT", "CODE": "N102", "FROM": "60856", "TO": "16502424956",
     "TRACKINGID": "TU1TXzU5Nzg3OQ==", "STATUS": "Message Sent/Delivered"},
    {"ORIGIN": "MMS_MT", "CODE": "E102", "TO": "16502424956", "TRACKINGID": "TU1TXzU5Nzg3Nw==",
     "STATUSDETAILS": "Recipient blocked by mobile operator"},
]  # fmt: skip
# How a name is written: Skycore's upper case, Sinch's lower case, or between.
NAME_CASES = st.sampled_from([str.upper, str.upper, str.lower, str.title, str.swapcase])
SKYCORE_XSI = (
    ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
    ' xsi:noNamespaceSchemaLocation ="http://www.skycore.com/schema/postback.xsd"'
)


@st.composite
def skycore_fields(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """One Skycore postback's fields: a documented one with fields deleted, given values of
    their kind or junk, added, repeated, and now and then content files."""
    fields: dict[str, Any] = dict(draw(st.sampled_from(SKYCORE_BASES)))
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2)):
        fields.pop(name, None)
    for name in draw(st.lists(st.sampled_from(sorted(SKYCORE_FIELDS)), max_size=4)):
        fields[name] = draw(SKYCORE_FIELDS[name] | SKYCORE_TEXT)
    pairs = list(fields.items())
    if draw(st.booleans()):
        pairs.append(("CONTENT", [("FILE", url) for url in draw(st.lists(URLS, max_size=4))]))
    if pairs and draw(st.integers(0, 4)) == 0:
        pairs.append(draw(st.sampled_from(pairs)))
    return pairs


@st.composite
def skycore_documents(draw: st.DrawFn) -> bytes:
    """Skycore postbacks as documents: names in any case, one postback or, as before July
    2014, one to three in <NOTIFICATION>s, with or without a declaration and xsi attributes."""

    def render(pairs: list[tuple[str, Any]]) -> str:
        out = []
        for name, value in pairs:
            tag = draw(NAME_CASES)(name)
            inner = render(value) if isinstance(value, list) else xml_escape(value)
            out.append(f"<{tag}>{inner}</{tag}>")
        return "".join(out)

    postbacks = draw(st.lists(skycore_fields(), min_size=1, max_size=3))
    if len(postbacks) == 1 and draw(st.booleans()):
        body = render(postbacks[0])
    else:
        body = render([("NOTIFICATION", p) for p in postbacks])
    root = draw(NAME_CASES)("POSTBACK")
    head = draw(st.sampled_from(["", "<?xml version='1.0'?>\n"]))
    attributes = draw(st.sampled_from(["", SKYCORE_XSI]))
    return f"{head}<{root}{attributes}>{body}</{root}>".encode()


# Mostly a form's; without one a form is not read (unsupported_media_type).
SKYCORE_FORM_CONTENT_TYPES = st.sampled_from(
    ["application/x-www-form-urlencoded", "application/x-www-form-urlencoded",
     "application/x-www-form-urlencoded; charset=UTF-8", "", "text/plain"]
)  # fmt: skip
# A postback that translates, for the forms to carry now and then.
SKYCORE_MO = (harness.PAYLOADS / "sinch" / "skycore_mms_mo.written.xml").read_text()


@st.composite
def skycore_forms(draw: st.DrawFn) -> bytes:
    """A postback in the form field `xml` (its name in any case, or one that only looks like
    it), now and then beside other fields or a second copy, written as a hostile sender might
    (form_text)."""
    xml = draw(st.just(SKYCORE_MO) | skycore_documents().map(bytes.decode))
    name = draw(st.sampled_from(["xml", "xml", "XML", "Xml", "xml ", "xmlx"]))
    others = st.tuples(st.sampled_from(["account", "id", "account", "XML"]), SKYCORE_TEXT)
    pairs = [(name, xml), *draw(st.lists(others, max_size=2))]
    return draw(form_text(draw(st.permutations(pairs))))


@st.composite
def skycore_budgets(draw: st.DrawFn) -> Sample:
    """Valid Skycore MOs around the budgets: <NOTIFICATION>s around max_events, files in one
    around max_media, and a form's fields around max_elements."""
    mo = "<ORIGIN>MMS_MO</ORIGIN><TO>74700</TO><TRACKINGID>MMS_MO_{}</TRACKINGID>"
    kind = draw(st.sampled_from(["notifications", "files", "form fields"]))
    if kind == "notifications":
        n = draw(around(LIMITS.max_events))
        inner = "".join(f"<NOTIFICATION>{mo.format(i)}</NOTIFICATION>" for i in range(n))
        return Sample(f"<POSTBACK>{inner}</POSTBACK>".encode(), "application/xml")
    n = draw(around(LIMITS.max_media))
    files = "".join(f"<FILE>https://h.example/{i}.jpg</FILE>" for i in range(n))
    notification = f"<NOTIFICATION>{mo.format(0)}<CONTENT>{files}</CONTENT></NOTIFICATION>"
    document = f"<POSTBACK>{notification}</POSTBACK>"
    if kind == "files":
        return Sample(document.encode(), "application/xml")
    padding = "".join(f"&pad{i}=" for i in range(draw(around(LIMITS.max_elements))))
    body = f"xml={quote_plus(document)}{padding}".encode()
    return Sample(body, "application/x-www-form-urlencoded")


SINCH = Target(
    "sinch",
    {
        "bytes": byte_samples(_SINCH_FILES, SINCH_CONTENT_TYPES),
        "json_fields": json_samples(mutated_json(_SINCH_JSON, SINCH_JSON_FIELDS)),
        "json_budgets": json_samples(
            budget_json(_SINCH_JSON, {"content": (LIMITS.max_media, MEDIA_ITEM)}, events=False)
        ),
        "xml_fields": st.builds(
            Sample, sinch_xml_fields(), XML_CONTENT_TYPES, limits=LIMIT_CHOICES
        ),
        "xml_trees": st.builds(Sample, _XML_POSTBACKS, XML_CONTENT_TYPES, limits=LIMIT_CHOICES),
        "xml_budgets": st.builds(Sample, sinch_xml_budgets(), XML_CONTENT_TYPES),
        "skycore_trees": st.builds(
            Sample, skycore_documents(), XML_CONTENT_TYPES, limits=LIMIT_CHOICES
        ),
        "skycore_forms": st.builds(
            Sample, skycore_forms(), SKYCORE_FORM_CONTENT_TYPES, limits=LIMIT_CHOICES
        ),
        "skycore_budgets": skycore_budgets(),
    },
)


# --- OpenMarket ------------------------------------------------------------------------------

_OPENMARKET_FILES = file_seeds(
    "openmarket",
    {
        "mo_doc_example.txt": "multipart/mixed; boundary=mimeboundary ",
        "mo_crlf_preamble.eml": 'multipart/mixed; boundary="----=_Part_4421_1871.1718031234"',
        "mo_several_images.eml": "multipart/mixed; boundary=b1",
        "mo_lf_unterminated.txt": "multipart/mixed; boundary=x",
        ".json": "application/json",
    },
)
# RFC 2046 boundary characters; a space may not end one.
BCHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? "
RFC_BOUNDARIES = st.text(BCHARS, min_size=1, max_size=70).filter(lambda b: not b.endswith(" "))
BOUNDARIES = RFC_BOUNDARIES | st.sampled_from(
    ["-", "--", "a" * 71, "x" * 5000, "a ", "é", "a;b", '"', "\x00", "=_"]
)
OPENMARKET_CONTENT_TYPES = st.one_of(
    BOUNDARIES.map(lambda b: f"multipart/mixed; boundary={b}"),
    BOUNDARIES.map(lambda b: f'Multipart/Related; type=x; BOUNDARY="{b}"'),
    st.sampled_from(["application/json", "", "text/plain", "multipart/mixed", "multipart/x;="]),
    st.text(max_size=60),
)
# Charsets senders may name, real or not, each with content that trips its codec: utf-7 and
# the escape codecs decode to lone surrogates.
CHARSETS = st.sampled_from(
    ["utf-8", "UTF-8", "utf-7", "UTF7", "unicode_escape", "raw_unicode_escape", "utf-16",
     "utf-16-le", "utf-32", "idna", "punycode", "rot13", "hex", "base64", "bz2", "zlib", "uu",
     "x-unknown", "latin-1", "cp1252", "shift_jis", "iso-2022-jp", "utf_8_sig", "undefined",
     '"utf-8"', "utf-8" * 20]
)  # fmt: skip
TEXT_CONTENTS = st.sampled_from(
    [b"+2AA-", b"+2AA", b"hi +AGEAYgBj- +2D3eAQ-", b"\\ud800", b"\\udfff\\x00", b"\\U0010ffff",
     b"\x00\x1f\x1e", b"\xed\xa0\x80", b"\xff\xfe\x00\xd8", b"\xd8\x00", b"xn--", b"caf\xe9"]
) | st.binary(max_size=64)  # fmt: skip
FILENAMES = st.sampled_from(
    ['filename="../../etc/passwd"', 'filename="a\x00b.png"', "filename=\x1f.png",
     'filename="=?utf-8?b?w6k=?="', f'filename="{"n" * 400}.jpg"',
     "filename*=UTF-8''%ED%A0%80.png", 'filename="C:\\\\x\\\\y.gif"', 'filename=".."',
     'filename="caf\xc3\xa9.jpg"', "filename="]
)  # fmt: skip
# Mostly headers a sender would write, in any case, sometimes hostile or anything at all.
PART_HEADERS = st.one_of(
    st.sampled_from(
        [("Content-Type", "text/plain"), ("content-type", "text/plain; charset=utf-8"),
         ("CONTENT-TYPE", "image/jpeg"), ("Content-Type", "application/smil"),
         ("Content-Transfer-Encoding", "base64"), ("content-transfer-encoding", "BASE64"),
         ("Content-Transfer-Encoding", "7bit"), ("Content-Transfer-Encoding", "quoted-printable"),
         ("Content-Transfer-Encoding", "x-uuencode"), ("Content-Id", "<a.jpg>"),
         ("Content-ID", "main"), ("Content-ID", "<\x00>"), ("Content-Location", "http://h/a/b"),
         ("Content-Location", "file:///etc/passwd"), ("X-Other", "1")]
    ),
    st.tuples(st.just("Content-Type"), CHARSETS.map(lambda c: f"text/plain; charset={c}")),
    st.tuples(st.just("Content-Disposition"), FILENAMES.map(lambda f: f"attachment; {f}")),
    st.tuples(st.text(max_size=20), st.text(max_size=40).map(lambda s: s.replace("\n", " "))),
)  # fmt: skip
PART_BODIES = st.one_of(
    TEXT_CONTENTS,
    st.binary(max_size=300).map(base64.encodebytes),
    TEXT_CONTENTS.map(base64.encodebytes),
    HOSTILE_TEXT.map(lambda s: s.encode("utf-8", "surrogatepass")),
)
MO_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "type": st.sampled_from(["MO", "mo", "REPORT", "X", ""]),
    "moId": st.integers(0, 2**64 - 1) | BIG_INTS | HOSTILE_TEXT,
    "source": NUMBERS,
    "destinations": st.lists(NUMBERS, max_size=3) | NUMBERS,
    "ccs": st.lists(NUMBERS, max_size=3),
    "bccs": st.lists(NUMBERS, max_size=3),
    "date": TIMES,
    "subject": HOSTILE_TEXT,
    "userAgent": HOSTILE_TEXT,
    "mobileOperatorId": COUNTS,
}
REPORT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "type": st.sampled_from(["REPORT", "report", "MO", ""]),
    "mtId": HOSTILE_TEXT | COUNTS,
    "status": st.sampled_from(["Delivered", "Rejected", "Forwarded", "", " "]) | HOSTILE_TEXT,
    "date": TIMES,
    "outcomeId": COUNTS | HOSTILE_TEXT,
    "outcomeDescription": HOSTILE_TEXT,
}
# The JSON part of tests/payloads/openmarket/mo_doc_example.txt.
_MO_DETAILS = {
    "type": "MO", "moId": 123456789012345, "source": "447800000001",
    "destinations": ["88600"], "ccs": ["88602"], "bccs": [], "date": "2014-07-16T19:20:30+00:00",
}  # fmt: skip


@st.composite
def multiparts(draw: st.DrawFn) -> Sample:
    """An MO built part by part: hostile boundaries, charsets, file names and details, and
    part, media and recipient counts around the budgets."""
    boundary = draw(BOUNDARIES)
    nl = draw(st.sampled_from([b"\r\n", b"\n"]))
    dash = b"--" + boundary.encode("utf-8", "surrogatepass")
    details = draw(
        mutated_json(Seeds([_MO_DETAILS], "openmarket/mo_doc_example.txt"), MO_FIELDS)
        | st.just(_MO_DETAILS)
    )
    if draw(st.integers(0, 4)) == 0:
        key = draw(st.sampled_from(["destinations", "ccs", "bccs"]))
        details = {**details, key: [f"4477009{i:05d}" for i in range(draw(around(100)))]}
    json_type = draw(st.sampled_from(["application/json", "APPLICATION/JSON; charset=utf-8"]))
    parts = [([("Content-Type", json_type), ("Content-Id", "main")], draw(json_text(details)))]
    parts += draw(st.lists(st.tuples(st.lists(PART_HEADERS, max_size=4), PART_BODIES), max_size=5))
    if draw(st.integers(0, 4)) == 0:
        image = ([("Content-Type", "image/png"), ("Content-Transfer-Encoding", "base64")], b"AA==")
        parts += [image] * draw(around(LIMITS.max_parts) | around(LIMITS.max_media))
    out = [draw(st.sampled_from([b"", b"preamble" + nl, nl, b"-" * 5000 + nl]))]
    for headers, body in parts:
        out.append(dash + nl)
        out.extend(f"{k}: {v}".encode("utf-8", "surrogatepass") + nl for k, v in headers)
        if draw(st.booleans()):
            out.append(nl)  # the blank line real MIME has; the docs draw none
        out.append(body + nl)
    if draw(st.booleans()):
        out.append(dash + b"--" + nl)
    quoted = f'"{boundary}"' if draw(st.booleans()) else boundary
    return Sample(
        b"".join(out),
        f"multipart/mixed; boundary={quoted}",
        headers=draw(st.sampled_from([(), (("X-Request-Id", "r-1"),), (("X-Request-Id", "\0"),)])),
        limits=draw(LIMIT_CHOICES),
        default_country=draw(COUNTRIES),
    )


@st.composite
def dashes(draw: st.DrawFn) -> Sample:
    """Bodies of boundary-like runs: `-` over runs of dashes, delimiters without line ends."""
    boundary = draw(st.sampled_from(["-", "--", "a", "=_"]))
    unit = draw(st.sampled_from([b"-", b"--\n", b"\n--", b"--" + boundary.encode() + b"\n"]))
    count = draw(st.sampled_from([1, 100, 10_000, 200_000]))
    return Sample(unit * count, f"multipart/mixed; boundary={boundary}")


OPENMARKET = Target(
    "openmarket",
    {
        "bytes": byte_samples(_OPENMARKET_FILES, OPENMARKET_CONTENT_TYPES),
        "multipart": multiparts(),
        "dashes": dashes(),
        "reports": json_samples(
            mutated_json(json_seeds("openmarket"), REPORT_FIELDS) | st.just(_MO_DETAILS)
        ),
    },
)

# --- Vonage ----------------------------------------------------------------------------------

VONAGE_ATTACHMENTS = st.fixed_dictionaries(
    {"url": URLS},
    optional={
        "type": st.sampled_from(["image", "video", "audio", "vcard", "file", "image/jpeg", ""]),
        "caption": HOSTILE_TEXT,
        "name": HOSTILE_TEXT,
    },
)
VONAGE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "channel": st.sampled_from(["mms", "mms", "sms", "whatsapp", "MMS", ""]),
    "message_uuid": HOSTILE_TEXT | COUNTS,
    "to": NUMBERS | st.fixed_dictionaries({"type": st.just("mms"), "number": NUMBERS}),
    "from": NUMBERS,
    "timestamp": TIMES,
    "client_ref": HOSTILE_TEXT | COUNTS,
    "message_type": st.sampled_from(["text", "image", "audio", "video", "vcard", "file"])
    | st.sampled_from(["sticker", "location", "content", "IMAGE", ""]),
    "text": HOSTILE_TEXT,
    "image": VONAGE_ATTACHMENTS,
    "image.url": URLS,
    "image.caption": HOSTILE_TEXT,
    "image.name": HOSTILE_TEXT,
    "audio.url": URLS,
    "video.url": URLS,
    "vcard.url": URLS,
    "file.url": URLS,
    "file.name": HOSTILE_TEXT,
    "content": st.lists(VONAGE_ATTACHMENTS | JSON_VALUES, max_size=8),
    "status": st.sampled_from(["submitted", "delivered", "rejected", "undeliverable", "read"])
    | st.sampled_from(["failed", "accepted", "DELIVERED", ""]),
    "error": JSON_VALUES,
    "error.title": COUNTS | HOSTILE_TEXT,
    "error.detail": HOSTILE_TEXT,
    "error.type": URLS,
    "usage.price": HOSTILE_TEXT | FLOATS,
    "origin.network_code": HOSTILE_TEXT | COUNTS,
    "destination.network_code": HOSTILE_TEXT | COUNTS,
}


def _vonage_content(value: Any) -> Any:
    """budget_json's content items (URL strings) as the attachment objects Vonage sends."""
    if isinstance(value, dict) and isinstance(value.get("content"), list):
        value["content"] = [
            {"type": "image", "url": item} if isinstance(item, str) else item
            for item in value["content"]
        ]
    return value


_VONAGE_JSON = json_seeds("vonage")
VONAGE = Target(
    "vonage",
    {
        "bytes": byte_samples(
            file_seeds("vonage", {".json": "application/json"}), JSON_CONTENT_TYPES
        ),
        "fields": json_samples(mutated_json(_VONAGE_JSON, VONAGE_FIELDS)),
        "budgets": json_samples(
            budget_json(
                _VONAGE_JSON, {"content": (LIMITS.max_media, MEDIA_ITEM)}, events=False
            ).map(_vonage_content)
        ),
    },
)

# --- Infobip ---------------------------------------------------------------------------------

_INFOBIP = json_seeds("infobip")
# Every payload's results: each is mutated on its own, then batched again.
_INFOBIP_RESULTS = Seeds(
    [r for v in _INFOBIP if isinstance(v, dict) for r in v.get("results") or [] if r],
    "infobip (their results)",
)
_INFOBIP_BATCHES = [v for v in _INFOBIP if isinstance(v, dict) and v.get("results")]
# Infobip's own form (an offset without a colon) beside the general ones.
INFOBIP_TIMES = TIMES | st.sampled_from(
    ["2016-10-06T09:28:39.220+0000", "2019-11-09T16:00:00.000-0700", "2019-11-09T16:00:00+0000",
     "2019-11-09T16:00:00.000+00", "2019-11-09T16:00:00.000+2400"]
)  # fmt: skip
INFOBIP_CONTENT_TYPES = st.sampled_from(
    ["text/plain", "TEXT/PLAIN; charset=utf-8", "image/jpeg", "application/smil", "video/mp4", ""]
) | HOSTILE_TEXT  # fmt: skip
INFOBIP_PARTS = st.one_of(
    st.fixed_dictionaries({"contentType": INFOBIP_CONTENT_TYPES, "value": HOSTILE_TEXT}),
    st.fixed_dictionaries({"contentType": INFOBIP_CONTENT_TYPES, "url": URLS}),
    JSON_VALUES,
)
INFOBIP_GROUP = st.fixed_dictionaries({"to": NUMBERS}) | st.fixed_dictionaries({"cc": NUMBERS})
INFOBIP_GROUPS = st.sampled_from(
    ["PENDING", "ACCEPTED", "DELIVERED", "UNDELIVERABLE", "EXPIRED", "REJECTED", "OK", "", " "]
)
INFOBIP_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "messageId": HOSTILE_TEXT | COUNTS,
    "from": NUMBERS,
    "to": NUMBERS | st.lists(NUMBERS, max_size=3),
    "sender": NUMBERS,
    "receivedAt": INFOBIP_TIMES,
    "sentAt": INFOBIP_TIMES,
    "doneAt": INFOBIP_TIMES,
    # A list of parts, or the pull API's JSON string.
    "message": st.lists(INFOBIP_PARTS, max_size=6) | HOSTILE_TEXT,
    "group": st.lists(INFOBIP_GROUP | JSON_VALUES, max_size=5),
    "text": HOSTILE_TEXT,
    "callbackData": HOSTILE_TEXT,
    "applicationId": HOSTILE_TEXT | COUNTS,
    "platform.applicationId": HOSTILE_TEXT | COUNTS,
    "pairedMessageId": HOSTILE_TEXT,
    "userAgent": HOSTILE_TEXT,
    "status": JSON_VALUES,
    "status.groupName": INFOBIP_GROUPS | HOSTILE_TEXT,
    "status.id": COUNTS | HOSTILE_TEXT,
    "error": JSON_VALUES,
    "error.id": COUNTS | st.sampled_from(["0", "15006", " "]) | HOSTILE_TEXT,
    "error.description": HOSTILE_TEXT,
    "messageCount": COUNTS,
    "smsCount": COUNTS,
    "mccMnc": COUNTS | HOSTILE_TEXT,
    "price.pricePerMessage": FLOATS | BIG_INTS,
}
INFOBIP_ENVELOPE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "results": JSON_VALUES | st.lists(JSON_VALUES, max_size=3),
    "messageCount": COUNTS,
    "pendingMessageCount": COUNTS,
    "notificationType": st.sampled_from(["CLICKED", ""]) | HOSTILE_TEXT,
}


@st.composite
def infobip_budgets(draw: st.DrawFn) -> Any:
    """A real batch whose first result's media parts or group, or whose results, or whose
    other values, are around the budgets."""
    value = json.loads(json.dumps(draw(st.sampled_from(_INFOBIP_BATCHES))))
    first = value["results"][0]
    kind = draw(st.sampled_from(["media", "recipients", "events", "elements"]))
    if kind == "media":
        n = draw(around(LIMITS.max_media))
        parts = [{"contentType": "image/png", "url": f"{MEDIA_ITEM}{i}"} for i in range(n)]
        first["message"] = parts
    elif kind == "recipients":
        n = draw(around(LIMITS.max_recipients))
        first["group"] = [{"cc": f"{NUMBER_ITEM}{i:04d}"} for i in range(n)]
    elif kind == "events":
        n, results = draw(around(LIMITS.max_events)), value["results"]
        value["results"] = [{**results[i % len(results)], "messageId": f"m-{i}"} for i in range(n)]
    else:
        extra = draw(around(LIMITS.max_elements))
        value = padded(value, extra, draw(st.sampled_from(["containers", "items"])))
    return value


INFOBIP = Target(
    "infobip",
    {
        "bytes": byte_samples(
            file_seeds("infobip", {".json": "application/json", ".xml": "application/xml"}),
            JSON_CONTENT_TYPES | st.sampled_from(["application/xml", "text/xml; charset=utf-8"]),
        ),
        "fields": json_samples(
            st.builds(
                lambda results, count: {"results": results, "messageCount": count},
                st.lists(mutated_json(_INFOBIP_RESULTS, INFOBIP_FIELDS), min_size=1, max_size=4),
                COUNTS,
            )
        ),
        "envelope": json_samples(mutated_json(_INFOBIP, INFOBIP_ENVELOPE_FIELDS)),
        "budgets": json_samples(infobip_budgets()),
    },
)

# --- Telnyx ----------------------------------------------------------------------------------

TELNYX_STATUSES = st.sampled_from(
    ["queued", "sending", "sent", "delivered", "delivery_failed", "sending_failed",
     "delivery_unconfirmed", "expired", "webhook_delivered", "DELIVERED", ""]
)  # fmt: skip
TELNYX_PARTY = st.fixed_dictionaries(
    {"phone_number": NUMBERS},
    optional={"status": TELNYX_STATUSES, "carrier": HOSTILE_TEXT, "line_type": HOSTILE_TEXT},
)
# A real SHA-256 now and then (the record takes it), else anything.
TELNYX_HASHES = st.text("0123456789abcdefABCDEF", min_size=64, max_size=64) | HOSTILE_TEXT
TELNYX_MEDIUM = st.fixed_dictionaries(
    {"url": URLS},
    optional={"content_type": HOSTILE_TEXT | COUNTS, "size": COUNTS | HOSTILE_TEXT,
              "hash_sha256": TELNYX_HASHES, "sha256": TELNYX_HASHES},
)  # fmt: skip
TELNYX_POINTERS = st.sampled_from(["/to/0/phone_number", "/to/1", "/to/", "/to", "/text", ""])
TELNYX_ERROR = st.fixed_dictionaries(
    {"code": COUNTS | HOSTILE_TEXT, "title": HOSTILE_TEXT},
    optional={"detail": HOSTILE_TEXT,
              "source": st.fixed_dictionaries({"pointer": TELNYX_POINTERS | HOSTILE_TEXT})},
)  # fmt: skip
TELNYX_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "data": JSON_VALUES,
    "data.event_type": st.sampled_from(
        ["message.received", "message.sent", "message.finalized", "message.queued", ""]
    ),
    "data.id": HOSTILE_TEXT | COUNTS,
    "data.occurred_at": TIMES,
    "data.payload": JSON_VALUES,
    "data.payload.id": HOSTILE_TEXT | COUNTS,
    "data.payload.type": st.sampled_from(["MMS", "MMS", "SMS", "mms", ""]),
    "data.payload.direction": st.sampled_from(["inbound", "outbound", "INBOUND", ""]),
    "data.payload.from": TELNYX_PARTY | NUMBERS,
    "data.payload.from.phone_number": NUMBERS,
    "data.payload.to": st.lists(TELNYX_PARTY, max_size=4) | TELNYX_PARTY | NUMBERS,
    "data.payload.cc": st.lists(TELNYX_PARTY | NUMBERS, max_size=4),
    "data.payload.text": HOSTILE_TEXT,
    "data.payload.subject": HOSTILE_TEXT,
    "data.payload.media": st.lists(TELNYX_MEDIUM, max_size=6),
    "data.payload.parts": COUNTS,
    "data.payload.errors": st.lists(TELNYX_ERROR, max_size=3),
    "data.payload.messaging_profile_id": HOSTILE_TEXT | COUNTS,
    "data.payload.cost": JSON_VALUES,
    "meta": JSON_VALUES,
    "meta.attempt": COUNTS,
    "meta.delivered_to": URLS,
}
_TELNYX_JSON = json_seeds("telnyx")
# The MMS webhooks: the fields family's SMS samples come from mutating `type`.
_TELNYX_MMS = Seeds([v for v in _TELNYX_JSON if v["data"]["payload"]["type"] == "MMS"], "telnyx")


@st.composite
def telnyx_budget_json(draw: st.DrawFn) -> Any:
    """A real webhook (made MMS) with to[] (one record each on outbound messages), cc[] and
    media[] entries around their budgets, and extra JSON values around max_elements."""
    value = json.loads(json.dumps(draw(st.sampled_from(_TELNYX_JSON))))
    payload = value["data"]["payload"]
    payload["type"] = "MMS"
    if draw(st.booleans()):
        n = draw(around(LIMITS.max_events) | around(LIMITS.max_recipients))
        payload["to"] = [
            {"phone_number": f"{NUMBER_ITEM}{i:04d}", "status": "delivered"} for i in range(n)
        ]
    if draw(st.booleans()):
        n = draw(around(LIMITS.max_recipients))
        payload["cc"] = [{"phone_number": f"{NUMBER_ITEM}{i:04d}"} for i in range(n)]
    if draw(st.booleans()):
        n = draw(around(LIMITS.max_media))
        payload["media"] = [{"url": f"{MEDIA_ITEM}{i}", "size": i} for i in range(n)]
    if draw(st.booleans()):
        value = padded(
            value,
            draw(around(LIMITS.max_elements)),
            draw(st.sampled_from(["containers", "items"])),
        )
    return value


TELNYX = Target(
    "telnyx",
    {
        "bytes": byte_samples(
            file_seeds("telnyx", {".json": "application/json"}), JSON_CONTENT_TYPES
        ),
        "fields": json_samples(mutated_json(_TELNYX_MMS, TELNYX_FIELDS)),
        "budgets": json_samples(telnyx_budget_json()),
    },
)

# --- form bodies (Plivo, Twilio) --------------------------------------------------------------

FORM = "application/x-www-form-urlencoded"
FORM_CONTENT_TYPES = st.sampled_from(
    [FORM, f"{FORM}; charset=UTF-8", "", "application/json", "text/plain",
     "multipart/form-data; boundary=x", ";;", f"{FORM}; charset=utf-16"]
)  # fmt: skip
Pairs = list[tuple[str, str]]


def form_seeds(provider_dir: str) -> Seeds:
    """The .form payload files of a provider, each as its (name, value) pairs in order."""
    files = [f for f in harness.payload_files(provider_dir) if f.suffix == ".form"]
    return Seeds(
        [parse_qsl(f.read_text("utf-8"), keep_blank_values=True) for f in files], provider_dir
    )


def _quoted(text: str) -> str:
    # Lone surrogates go out as the bytes of their code points (%ED%A0%80): no UTF-8 text.
    return quote_plus(text, errors="surrogatepass")


@st.composite
def form_text(draw: st.DrawFn, pairs: Pairs) -> bytes:
    """Pairs as a form body, as a hostile sender might write it: percent-encoded, a field
    repeated, one pair unescaped (its "&", "=", "%" and raw bytes as they are), a name without
    "=", "&" doubled, or ";" as the separator."""
    how = draw(st.sampled_from(["plain", "plain", "plain", "repeated", "raw", "bare", "&&", ";"]))
    items = [f"{_quoted(k)}={_quoted(v)}" for k, v in pairs]
    if items and how == "raw":
        at = draw(st.integers(0, len(items) - 1))
        items[at] = "=".join(pairs[at])
    elif items and how == "repeated":
        items.insert(draw(st.integers(0, len(items))), draw(st.sampled_from(items)))
    elif items and how == "bare":
        items.append(_quoted(draw(st.sampled_from(pairs))[0]))
    separator = how if how in ("&&", ";") else "&"
    return separator.join(items).encode("utf-8", "surrogatepass")


@st.composite
def mutated_form(
    draw: st.DrawFn, seeds: Seeds, fields: Mapping[str, st.SearchStrategy[str]]
) -> Pairs:
    """A real form with fields deleted, given values of their own kind or junk, unknown fields
    added, and now and then its fields in another order."""
    form = dict(draw(st.sampled_from(seeds)))
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2)):
        form.pop(name, None)
    for name in draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=4)):
        form[name] = draw(fields[name] | HOSTILE_TEXT)
    for name, value in draw(st.lists(st.tuples(HOSTILE_TEXT, HOSTILE_TEXT), max_size=2)):
        form[name] = value
    pairs = list(form.items())
    return draw(st.permutations(pairs)) if draw(st.integers(0, 4)) == 0 else pairs


@st.composite
def budget_form(
    draw: st.DrawFn, seeds: Seeds, indexed: Mapping[str, tuple[int, str]], count: str | None
) -> Pairs:
    """A real form with numbered fields (`indexed` maps a prefix to its budget and the prefix
    of its items) around the budget, the field announcing how many (`count`) right, one off or
    absent, and padding fields around `max_elements` (a form's elements are its fields)."""
    pairs: Pairs = list(draw(st.sampled_from(seeds)))
    for prefix, (limit, item) in indexed.items():
        if draw(st.booleans()):
            numbered = re.compile(re.escape(prefix) + "[0-9]+")
            n = draw(around(limit))
            pairs = [(k, v) for k, v in pairs if not numbered.fullmatch(k) and k != count]
            pairs += [(f"{prefix}{i}", f"{item}{i}") for i in range(n)]
            announced = draw(st.sampled_from([n, n, n - 1, n + 1, None]))
            if count is not None and announced is not None:
                pairs.append((count, str(announced)))
    if draw(st.booleans()):
        pairs += [(f"pad{i}", "") for i in range(draw(around(LIMITS.max_elements)))]
    return pairs


def form_samples(values: st.SearchStrategy[Pairs]) -> st.SearchStrategy[Sample]:
    return st.builds(
        Sample,
        body=values.flatmap(form_text),
        content_type=st.sampled_from([FORM, f"{FORM}; charset=UTF-8", ""]),
        limits=LIMIT_CHOICES,
        default_country=COUNTRIES,
    )


# --- Plivo -----------------------------------------------------------------------------------

_PLIVO_NUMERIC = COUNTS.map(str)
PLIVO_FIELDS: dict[str, st.SearchStrategy[str]] = {
    "Type": st.sampled_from(["mms", "sms", "whatsapp", "MMS", ""]),
    "Status": st.sampled_from(["queued", "sent", "failed", "delivered", "undelivered"])
    | st.sampled_from(["rejected", "read", "received", "Delivered", ""]),
    "MessageUUID": HOSTILE_TEXT | _PLIVO_NUMERIC,
    "ParentMessageUUID": HOSTILE_TEXT,
    "From": NUMBERS,
    "To": NUMBERS,
    "Body": HOSTILE_TEXT,
    "Text": HOSTILE_TEXT,
    "Units": _PLIVO_NUMERIC | st.sampled_from(["1", "01", "1.0", "٣", " 1", "-1"]),
    "MediaCount": _PLIVO_NUMERIC,
    "ErrorCode": _PLIVO_NUMERIC | st.sampled_from(["", "000", "50"]),
    "Sequence": _PLIVO_NUMERIC,
    "DeliveryReportTime": TIMES,
    "requester_ip": HOSTILE_TEXT,
} | {
    # Media<n> as the docs (1...) and a support article (0...) number them, with leading
    # zeros, past int()'s 4,300 digits, and names that only look like one.
    name: URLS
    for name in ["Media0", "Media1", "Media2", "Media10", "Media01", "Media" + "9" * 5000,
                 "Media٣", "Media", "media1", "Media1 ", "Media-1"]
}  # fmt: skip
_PLIVO_FORMS = form_seeds("plivo")
PLIVO = Target(
    "plivo",
    {
        "bytes": byte_samples(file_seeds("plivo", {".form": FORM}), FORM_CONTENT_TYPES),
        "fields": form_samples(mutated_form(_PLIVO_FORMS, PLIVO_FIELDS)),
        "budgets": form_samples(
            budget_form(_PLIVO_FORMS, {"Media": (LIMITS.max_media, MEDIA_ITEM)}, "MediaCount")
        ),
    },
)

# --- Twilio ----------------------------------------------------------------------------------

TWILIO_ADDRESSES = NUMBERS | st.sampled_from(
    ["whatsapp:+14155550100", "whatsapp:", "messenger:1234567890123456", "rcs:brand_agent",
     "whatsapp:+1 (415) 555-0100", "sms:+14155550100"]
)  # fmt: skip
TWILIO_COUNTS = COUNTS.map(str) | st.sampled_from(["", " 1", "1.0", "01", "٣", "1e3", "-0"])
TWILIO_STATUSES = st.sampled_from(
    ["received", "receiving", "accepted", "scheduled", "queued", "sending", "sent", "delivered",
     "undelivered", "failed", "read", "canceled", "partially_delivered", "DELIVERED", "", " "]
)  # fmt: skip
TWILIO_FIELDS: dict[str, st.SearchStrategy[str]] = {
    "MessageSid": st.sampled_from(["SM" + "0" * 32, "MM" + "f" * 32, "", "SM\x1f1"]),
    "SmsSid": HOSTILE_TEXT,
    "AccountSid": st.sampled_from(["AC" + "1" * 32, "acctid", ""]),
    "MessagingServiceSid": st.sampled_from(["MG" + "2" * 32, ""]),
    "From": TWILIO_ADDRESSES,
    "To": TWILIO_ADDRESSES,
    "Body": HOSTILE_TEXT,
    "NumMedia": TWILIO_COUNTS,
    "NumSegments": TWILIO_COUNTS,
    "MediaUrl0": URLS,
    "MediaUrl1": URLS,
    "MediaUrl01": URLS,
    "MediaContentType0": st.sampled_from(["image/jpeg", "text/vcard", "", "x" * 5000]),
    "MediaContentType1": st.sampled_from(["video/3gpp", "application/smil", ""]),
    "MessageStatus": TWILIO_STATUSES,
    "SmsStatus": TWILIO_STATUSES,
    "ErrorCode": TWILIO_COUNTS,
    "ErrorMessage": HOSTILE_TEXT,
    "RawDlrDoneDate": st.sampled_from(["2303072155", "9999999999", "", "23030721"]),
    "ToCity": HOSTILE_TEXT,
    "FromCountry": st.sampled_from(["US", "", "ZZ"]),
    "ApiVersion": st.sampled_from(["2010-04-01", ""]),
}
_TWILIO_FORMS = form_seeds("twilio")
TWILIO = Target(
    "twilio",
    {
        "bytes": byte_samples(file_seeds("twilio", {".form": FORM}), FORM_CONTENT_TYPES),
        "fields": form_samples(mutated_form(_TWILIO_FORMS, TWILIO_FIELDS)),
        "budgets": form_samples(
            budget_form(
                _TWILIO_FORMS, {"MediaUrl": (LIMITS.max_media, MEDIA_ITEM)}, count="NumMedia"
            )
        ),
    },
)

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (BANDWIDTH_V1, BANDWIDTH_V2, OPENMARKET, SINCH, VONAGE, INFOBIP, TELNYX, PLIVO, TWILIO)
}
