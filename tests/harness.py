"""One harness for every provider's tests: a table of named `Case`s and one runner.

A provider is three things here: its module (connector/providers/<module>), its test table
(`TABLE` in tests/unit/test_<module>.py, run by `table_test`) and its payload files
(tests/payloads/<module>/, with the golden records beside them as <stem>.expected.json).

Callbacks are translated as the app does: `Config.model_validate` with the provider enabled and
a filesystem media store under the test's tmp directory, `pipeline.routes`, then the route's
`provider.translate(callback, route.context)`. Budgets and options are config keys
(`Case.settings`), never a hand-built context.

Golden files hold the records as `MmsEvent.to_avro()` gives them, JSON-safe (times as ISO 8601,
the media store's root as `{media}`), received_at fixed (tests.helpers.RECEIVED_AT). They are
compared field by field, so a failure names the record and the field. `MMS_UPDATE_GOLDEN=1`
(re)writes them instead; it is refused where `CI` is set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest

from connector import pipeline
from connector.codec import avro_payload, current_schema
from connector.config import Config, ProviderConfig
from connector.providers import PROVIDERS
from connector.providers.contract import Refusal
from connector.record import Media, MmsEvent
from tests.helpers import PAYLOADS, callback, payload

UPDATE_GOLDEN = "MMS_UPDATE_GOLDEN"
MEDIA_ROOT = "{media}"  # the media store's root, in golden files and expected media
# Budgets every provider's config takes; a provider's own (OpenMarket's max_parts, ...) are in
# its `Provider.options` model.
COMMON_BUDGETS = ("max_elements", "max_events", "max_media", "max_recipients")
_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
SCHEMA = fastavro.parse_schema(json.loads(current_schema()))


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()
"""In an expected mapping (`including`, `variant`): the key must not be there / is removed."""


class Including(dict[str, Any]):
    """Expected attributes of which only the named keys are checked (ABSENT: not there)."""


def including(expected: Mapping[str, Any]) -> Including:
    return Including(expected)


@dataclasses.dataclass(frozen=True)
class Case:
    """One row of a provider's table: a callback and what must come of it.

    The callback: `file` (in tests/payloads/<module>/) or `body`, with `headers` (Content-Type
    and any other) and `settings` (keys of `providers.<name>` in the config: default_country,
    max_media, ..., the provider's own options).

    What must come of it, exactly one of: `golden` (True: <file stem>.expected.json; or the
    stem of another golden file: this callback must give the same records), `refused`
    ((code, status)), or `fields` (a mapping per record, or one mapping for a single record:
    only the fields named are checked; `including(...)` checks only some attributes).
    """

    label: str
    file: str | None = None
    body: bytes | str | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    golden: bool | str = False
    refused: tuple[str, int] | None = None
    fields: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        if (self.file is None) == (self.body is None):
            raise ValueError(f"{self.label}: give exactly one of file or body")
        expectations = [bool(self.golden), self.refused is not None, self.fields is not None]
        if sum(expectations) != 1:
            raise ValueError(f"{self.label}: give exactly one of golden, refused or fields")
        if self.golden is True and self.file is None:
            raise ValueError(f"{self.label}: golden=True needs a file (or name the golden file)")

    def raw(self, module: str) -> bytes:
        if self.file is not None:
            return payload(module, self.file)
        assert self.body is not None
        return self.body.encode() if isinstance(self.body, str) else self.body

    def golden_path(self, module: str) -> Path | None:
        if not self.golden:
            return None
        stem = self.golden if isinstance(self.golden, str) else Path(self.file or "").stem
        return PAYLOADS / module / f"{stem}.expected.json"

    @property
    def content_type(self) -> str:
        return next((v for k, v in self.headers.items() if k.lower() == "content-type"), "")


# --- translating as the app does ----------------------------------------------------------------


def module_of(name: str) -> str:
    """The provider's module name: its payload directory and test module (test_<module>.py)."""
    return name.replace("-", "_")


def budget_keys(name: str) -> tuple[str, ...]:
    """The budget and option keys `providers.<name>` takes beside the common keys."""
    return (*COMMON_BUDGETS, *PROVIDERS[name].options.model_fields)


def default(name: str | None, key: str) -> Any:
    """The default of a config key of provider `name` (common, or one of its options); with no
    name, of whichever provider takes it."""
    providers = PROVIDERS.values() if name is None else [PROVIDERS[name]]
    for provider in providers:
        if key in provider.options.model_fields:
            return provider.options.model_fields[key].default
    return ProviderConfig.model_fields[key].default


# The lowest value the config takes for a budget.
SETTING_MINIMUM = {"max_elements": 1, "max_events": 1, "max_media": 0, "max_recipients": 1}


def route(name: str, media_root: Path, settings: Mapping[str, Any] | None = None) -> pipeline.Route:
    """The app's route for provider `name` with `settings`, storing media under `media_root`."""
    config = Config.model_validate(
        {
            "media": {"store": "filesystem", "root": str(media_root)},
            "providers": {
                name: {"enabled": True, "auth": {"unauthenticated": True}, **(settings or {})}
            },
        }
    )
    [only] = pipeline.routes(config, env={})
    return only


class Translator:
    """Translate callbacks of one provider; routes are built once per settings.

    `media_root` may be left out for a provider that does not store media (it is never given
    the store)."""

    def __init__(self, name: str, media_root: Path | None = None) -> None:
        if media_root is None and PROVIDERS[name].stores_media:
            raise ValueError(f"{name} stores media: give a media_root under tmp_path")
        self.name = name
        self.media_root = media_root or Path("/nonexistent/mms-harness-media")
        self._routes: dict[str, pipeline.Route] = {}

    def route(self, settings: Mapping[str, Any] | None = None) -> pipeline.Route:
        key = json.dumps(settings or {}, sort_keys=True, default=str)
        if key not in self._routes:
            self._routes[key] = route(self.name, self.media_root, settings)
        return self._routes[key]

    def __call__(
        self, body: bytes | str, headers: Mapping[str, str] | None = None, **settings: Any
    ) -> list[MmsEvent]:
        found = self.route(settings)
        return found.provider.translate(callback(body, dict(headers or {})), found.context)

    def refusal(
        self, body: bytes | str, headers: Mapping[str, str] | None = None, **settings: Any
    ) -> Refusal:
        """The refusal of a callback that must be refused (and nothing else)."""
        with pytest.raises(Refusal) as info:
            self(body, headers, **settings)
        return info.value

    def case(self, case: Case) -> list[MmsEvent]:
        return self(case.raw(module_of(self.name)), case.headers, **case.settings)


# --- bodies ---------------------------------------------------------------------------------


def variant(module: str, file: str, changes: Mapping[str, Any]) -> bytes:
    """A JSON payload file with fields replaced: a key is a path of object keys and list
    indexes ("0.message.to"); ABSENT removes the field."""
    data = orjson.loads(payload(module, file))
    for path, value in changes.items():
        *parents, last = path.split(".")
        node: Any = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is ABSENT:
            del node[last]
        else:
            node[last] = value
    # The standard library writes integers past 64 bits, which orjson refuses.
    return json.dumps(data, ensure_ascii=False).encode()


def payload_files(module: str) -> list[Path]:
    """The payload files of a provider, not its golden files."""
    files = (PAYLOADS / module).iterdir()
    return sorted(f for f in files if f.is_file() and not f.name.endswith(".expected.json"))


def stored(content: bytes, content_type: str | None, filename: str | None) -> dict[str, Any]:
    """The record's medium for `content` kept in the filesystem media store."""
    digest = hashlib.sha256(content).hexdigest()
    return {
        **dataclasses.asdict(Media(f"{MEDIA_ROOT}/{digest[:2]}/{digest}")),
        "content_type": content_type,
        "size": len(content),
        "sha256": digest,
        "filename": filename,
        "status": "stored",
    }


# --- checking records -----------------------------------------------------------------------


def records(events: Sequence[MmsEvent], media_root: Path) -> list[dict[str, Any]]:
    """The events' records with the media store's root written as MEDIA_ROOT."""
    root = media_root.resolve().as_uri()
    out = []
    for event in events:
        record = event.to_avro()
        record["media"] = [
            {**m, "uri": MEDIA_ROOT + m["uri"][len(root) :]} if m["uri"].startswith(root) else m
            for m in record["media"]
        ]
        out.append(record)
    return out


def jsonable(value: Any) -> Any:
    """`value` as it reads back from JSON (times as ISO 8601 text, Media as their records)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Media):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return type(value)({k: jsonable(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def differences(expected: Any, actual: Any, where: str) -> list[str]:
    """Where `actual` differs from `expected`, field by field (`Including`: named keys only)."""
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        extra = [] if isinstance(expected, Including) else [k for k in actual if k not in expected]
        out = []
        for key in [*expected, *extra]:
            want = expected.get(key, ABSENT)
            got = actual.get(key, ABSENT)
            out += (
                [] if want is ABSENT and got is ABSENT else differences(want, got, f"{where}.{key}")
            )
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{where}: {len(actual)} items, expected {len(expected)}: {actual!r:.300}"]
        return [
            d
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for d in differences(e, a, f"{where}[{i}]")
        ]
    if expected != actual or type(expected) is not type(actual):
        return [f"{where}: {actual!r:.300} (expected {expected!r:.300})"]
    return []


def assert_same(expected: Sequence[Any], actual: Sequence[Any], source: str) -> None:
    """Fail naming each record index and field that differs."""
    found = differences(list(expected), list(actual), "records")
    shown = "\n  ".join(found[:20]) + (f"\n  ... {len(found) - 20} more" if len(found) > 20 else "")
    assert not found, f"{source}:\n  {shown}"


def check_golden(path: Path, got: list[dict[str, Any]]) -> None:
    data = jsonable(got)
    if os.environ.get(UPDATE_GOLDEN) == "1":
        if os.environ.get("CI"):
            pytest.fail(
                f"{UPDATE_GOLDEN}=1 is refused in CI: rewrite golden files locally, review the diff"
            )
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    if not path.exists():
        pytest.fail(f"no golden file {path.relative_to(PAYLOADS)}: run with {UPDATE_GOLDEN}=1")
    assert_same(json.loads(path.read_text()), data, str(path.relative_to(PAYLOADS.parent)))


def golden_records(name: str, stem: str) -> list[dict[str, Any]]:
    """The records of a golden file as `to_avro()` gives them (times as datetimes again)."""
    data = json.loads((PAYLOADS / module_of(name) / f"{stem}.expected.json").read_text())
    return [
        {k: datetime.fromisoformat(v) if k.endswith("_at") and v else v for k, v in r.items()}
        for r in data
    ]


def check_fields(
    expected: Mapping[str, Any] | Sequence[Mapping[str, Any]], got: list[dict]
) -> None:
    wanted = [expected] if isinstance(expected, Mapping) else list(expected)
    assert len(got) == len(wanted), f"{len(got)} records, expected {len(wanted)}"
    partial = [{k: record[k] for k in want} for want, record in zip(wanted, got, strict=True)]
    assert_same(jsonable(wanted), jsonable(partial), "fields")


def check_store(events: Sequence[MmsEvent], media_root: Path) -> None:
    """Stored media are content-addressed files under the store's root, each file held once."""
    stored_media = [m for e in events for m in e.media if m.status == "stored"]
    for medium in stored_media:
        path = Path(medium.uri.removeprefix("file://"))
        content = path.read_bytes()
        assert path.parent.parent == media_root.resolve(), medium
        assert path.name == medium.sha256 == hashlib.sha256(content).hexdigest(), medium
        assert medium.size == len(content), medium
    assert len(stored_files(media_root)) == len({m.sha256 for m in stored_media})


def stored_files(media_root: Path) -> list[Path]:
    return sorted(p for p in media_root.rglob("*") if p.is_file()) if media_root.exists() else []


def check_refusal(name: str, refusal: Refusal, code: str, status: int) -> None:
    """The refusal the provider's reply and the dead-letter topic can carry."""
    assert (refusal.code, refusal.status) == (code, status), refusal
    assert len(refusal.detail) < 400  # echoed values are cut
    assert "root:" not in refusal.detail  # nothing from /etc/passwd, ever
    reply = PROVIDERS[name].refused(refusal)
    assert reply.status == status
    if reply.media_type == "application/json":
        assert orjson.loads(reply.body)["error"] == code
    else:
        assert code.encode() in reply.body


def clean_refusal(refusal: Refusal) -> None:
    """A refusal a client can be told: a short snake_case code, a status, JSON-able."""
    assert _CODE.fullmatch(refusal.code), refusal.code
    assert 400 <= refusal.status <= 599, refusal
    orjson.dumps({"error": refusal.code, "detail": refusal.detail, "status": refusal.status})


# --- the runner -----------------------------------------------------------------------------


def run(name: str, case: Case, media_root: Path) -> None:
    """Translate `case` through provider `name`'s route and check what it expects."""
    translate = Translator(name, media_root)
    if case.refused is not None:
        with pytest.raises(Refusal) as info:
            translate.case(case)
        check_refusal(name, info.value, *case.refused)
        assert stored_files(media_root) == [], "a refused callback stores nothing"
        return
    events = translate.case(case)
    for event in events:  # every record fits the schema and encodes
        assert fastavro.validation.validate(event.to_avro(), SCHEMA, raise_errors=True)
        avro_payload(event.to_avro())
    got = records(events, media_root)
    check_store(events, media_root)
    files = stored_files(media_root)
    golden = case.golden_path(module_of(name))
    if golden is not None:
        check_golden(golden, got)
    else:
        assert case.fields is not None
        check_fields(case.fields, got)
    # A retry (same body) gives the same records, event ids included, and stores nothing new.
    assert records(translate.case(case), media_root) == got
    assert stored_files(media_root) == files


def table_test(name: str, table: Sequence[Case]) -> Callable[[Case, Path], None]:
    """The test of provider `name`'s table: one test per case, its label the test id."""
    labels = [case.label for case in table]
    duplicated = sorted({label for label in labels if labels.count(label) > 1})
    assert not duplicated, f"labels used twice: {duplicated}"

    @pytest.mark.parametrize("case", [pytest.param(c, id=c.label) for c in table])
    def test_table(case: Case, tmp_path: Path) -> None:
        run(name, case, tmp_path / "media")

    return test_table


def table(name: str) -> Sequence[Case]:
    """Provider `name`'s table: `TABLE` of tests/unit/test_<module>.py."""
    module = f"tests.unit.test_{module_of(name)}"
    try:
        found = importlib.import_module(module).TABLE
    except (ModuleNotFoundError, AttributeError):
        pytest.fail(
            f"provider {name} has no test table: {module} must define TABLE (tests/harness.py)"
        )
    return found
