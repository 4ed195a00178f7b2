"""What every provider must do, written once and run for each provider in PROVIDERS over its
table (`TABLE` in tests/unit/test_<module>.py; tests/harness.py): a provider without a table
fails here, so a new provider brings one.

- bodies that are no callback at all (empty, not parseable, of the wrong type) are refused with
  a clean code and a 4xx status;
- `default_country` (a config key) makes the national numbers of the table's rows E.164, the
  numbers as sent kept beside them (raw.<field>);
- the budgets (max_events, max_media, max_recipients, max_elements: config keys) are inclusive,
  and one below what a row needs refuses it with 413;
- the table's bodies, cut and mutated, are translated or refused, never anything else;
- it has fuzz families (tests/fuzzing.py).
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.providers import PROVIDERS
from connector.providers.contract import Refusal
from connector.record import MmsEvent
from tests import fuzzing, harness
from tests.harness import Case
from tests.helpers import PAYLOADS

NAMES = sorted(PROVIDERS)


def translator(name: str, tmp_path: Path) -> harness.Translator:
    return harness.Translator(name, tmp_path / "media")


def accepted(name: str) -> list[Case]:
    return [case for case in harness.table(name) if case.refused is None]


def test_every_provider_brings_fuzz_families() -> None:
    # tests/fuzzing.py: one Target per provider, run by tests/unit/test_fuzz_<module>.py.
    assert set(fuzzing.TARGETS) == set(PROVIDERS)


@pytest.mark.parametrize("name", NAMES)
def test_every_provider_brings_a_table(name: str) -> None:
    table = harness.table(name)
    assert any(case.golden for case in table), "no row with golden records"
    assert any(case.refused for case in table), "no refused row"
    # Every golden file is some row's: none is left behind by a removed row.
    module = harness.module_of(name)
    named = {case.golden_path(module) for case in table}
    assert set((PAYLOADS / module).glob("*.expected.json")) <= named


GARBAGE = {
    "empty": b"",
    "white space": b" \r\n\t",
    "binary": b"\x00\xff\xfe\x80\x1f",
    "a BOM alone": b"\xef\xbb\xbf",
    "JSON null": b"null",
    "JSON number": b"0",
    "JSON string": b'"text"',
    "JSON true": b"true",
    "JSON empty array": b"[]",
    "JSON array of a number": b"[1]",
    "JSON empty object": b"{}",
    "an unknown XML document": b"<x/>",
    "form encoded": b"a=1&b=2",
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("body", GARBAGE.values(), ids=GARBAGE.keys())
def test_what_is_no_callback_is_refused_with_a_4xx(name: str, body: bytes, tmp_path: Path) -> None:
    translate = translator(name, tmp_path)
    # Under each Content-Type the table sends, and none.
    for content_type in sorted({"", *(case.content_type for case in harness.table(name))}):
        refusal = translate.refusal(body, {"Content-Type": content_type})
        harness.clean_refusal(refusal)
        assert 400 <= refusal.status <= 499, (content_type, refusal)
        assert PROVIDERS[name].refused(refusal).status == refusal.status
    assert harness.stored_files(tmp_path / "media") == []


NUMBER_FIELDS = ("owner", "from", "to", "cc", "bcc")


def made_e164(national: dict[str, Any], e164: dict[str, Any]) -> int:
    """How many numbers of a record became E.164 with a default country; each must be, with
    the number as sent beside it (raw.<field>: for a list, all of them as sent)."""
    changed = 0
    for field in NUMBER_FIELDS:
        sent, got = national[field], e164[field]
        pairs = [(sent, got)] if isinstance(sent, str) else zip(sent or [], got or [], strict=True)
        for before, after in pairs:
            if before != after:
                changed += 1
                assert after.startswith("+") and after[1:].isdigit(), (field, after)
                raw = sent if isinstance(sent, str) else json.dumps(sent, separators=(",", ":"))
                assert e164["attributes"][f"raw.{field}"] == raw, field
    return changed


@pytest.mark.parametrize("name", NAMES)
def test_default_country_makes_national_numbers_e164(name: str, tmp_path: Path) -> None:
    translate = translator(name, tmp_path)
    rows = [case for case in accepted(name) if "default_country" in case.settings]
    assert rows, "no row sets default_country"
    for case in rows:
        body = case.raw(harness.module_of(name))
        others = {k: v for k, v in case.settings.items() if k != "default_country"}
        national = [e.to_avro() for e in translate(body, case.headers, **others)]
        e164 = [e.to_avro() for e in translate.case(case)]
        changed = sum(made_e164(n, e) for n, e in zip(national, e164, strict=True))
        assert changed, f"{case.label}: default_country changed no number"


# What a budget counts in the records (None: elements, which records do not show), and the
# refusal past it.
BUDGETS: dict[str, tuple[Callable[[list[MmsEvent]], int] | None, str]] = {
    "max_elements": (None, "too_many_elements"),
    "max_events": (len, "too_many_events"),
    "max_media": (lambda events: max((len(e.media) for e in events), default=0), "too_many_media"),
    "max_recipients": (
        lambda events: max((len(e.to) + len(e.cc) + len(e.bcc) for e in events), default=0),
        "too_many_recipients",
    ),
}


def least(translate: harness.Translator, case: Case, budget: str) -> int:
    """The smallest value of `budget` that translates `case` (below it: refused past it)."""
    body, headers = case.raw(harness.module_of(translate.name)), case.headers
    code = BUDGETS[budget][1]
    low, high = harness.SETTING_MINIMUM[budget], harness.default(translate.name, budget)
    while low < high:
        middle = (low + high) // 2
        try:
            translate(body, headers, **{**case.settings, budget: middle})
        except Refusal as refusal:
            assert (refusal.code, refusal.status) == (code, 413), (case.label, refusal)
            low = middle + 1
        else:
            high = middle
    return low


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("budget", sorted(BUDGETS))
def test_budgets_are_inclusive_and_refuse_past_with_413(
    name: str, budget: str, tmp_path: Path
) -> None:
    """Per row: the least budget that translates it gives the very records, one below is
    refused with 413, and it is no less than what the records hold (a callback may carry more
    than its records keep: empty or unusable items). Over the table: some row needs no more than
    its records hold (the budget is inclusive), and some is refused, wherever a callback can
    carry more than one."""
    translate = translator(name, tmp_path)
    count, _ = BUDGETS[budget]
    exact = refused = 0
    for case in accepted(name):
        events = translate.case(case)
        enough = least(translate, case, budget)
        at = translate(
            case.raw(harness.module_of(name)), case.headers, **{**case.settings, budget: enough}
        )
        assert [e.to_avro() for e in at] == [e.to_avro() for e in events], case.label
        refused += enough > harness.SETTING_MINIMUM[budget]
        if count is not None and count(events) > 0:
            assert enough >= count(events), case.label
            exact += enough == count(events)
    assert exact or count is None, f"no row translates at the {budget} its records need"
    assert refused or budget in {"max_events", "max_recipients"}, f"no row needs more {budget}"


MAX_MUTATED_BYTES = 1024 * 1024
SNIPPETS = [
    b"\x00",
    b"\xff",
    b'"',
    b"<",
    b">",
    b"{",
    b"]",
    b",",
    b"--",
    b"\r\n",
    b"\\ud800",
    b"&#0;",
]


def mutations(body: bytes, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """`body` cut short, with bytes flipped, deleted, inserted or repeated."""
    cuts = {0, 1, len(body) // 3, len(body) // 2, max(len(body) - 1, 0)}
    cuts |= {rng.randrange(len(body) + 1) for _ in range(6)}
    for at in sorted(cuts):
        yield f"cut at {at}", body[:at]
    for _ in range(12):
        at = rng.randrange(len(body) + 1)
        buf = bytearray(body)
        match rng.choice(["flip", "delete", "insert", "repeat"]):
            case "flip" if at < len(buf):
                buf[at] ^= 1 << rng.randrange(8)
                how = f"bit flipped at {at}"
            case "delete":
                size = rng.randrange(1, 17)
                del buf[at : at + size]
                how = f"{size} bytes deleted at {at}"
            case "repeat":
                size, times = rng.randrange(1, 200), rng.choice([2, 10, 100])
                buf[at:at] = buf[at : at + size] * times
                how = f"{size} bytes at {at} repeated {times} times"
            case _:
                snippet = rng.choice(SNIPPETS)
                buf[at:at] = snippet
                how = f"{snippet!r} inserted at {at}"
        yield how, bytes(buf)


@pytest.mark.parametrize("name", NAMES)
def test_cut_and_mutated_bodies_are_translated_or_refused(name: str, tmp_path: Path) -> None:
    translate = translator(name, tmp_path)
    rng = random.Random(zlib.crc32(name.encode()))  # the same mutations on every run
    for case in harness.table(name):
        body = case.raw(harness.module_of(name))
        if len(body) > MAX_MUTATED_BYTES:
            continue  # megabytes of one character: cutting them shows nothing new
        for how, mutated in mutations(body, rng):
            try:
                translate(mutated, case.headers, **case.settings)
            except Refusal as refusal:
                harness.clean_refusal(refusal)
            except Exception as exc:
                raise AssertionError(f"{case.label}, {how}: {exc!r}") from exc
