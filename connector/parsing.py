"""Shared helpers for provider parsers: JSON, timestamps and phone numbers.

Everything here raises `Refusal` (never anything else) on bad input, so provider modules can
call these without their own try/except around each field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import unquote

import orjson
import phonenumbers

from connector.callback import Refusal
from connector.record import Media, attribute_value

MAX_JSON_DEPTH = 32
# Short codes are 3-8 digits in the markets these providers serve; never re-format them.
MAX_SHORT_CODE_DIGITS = 8


def parse_json(body: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refusal("invalid_json", f"body is not valid JSON: {exc}") from None
    # Nesting cannot be deeper than the number of opening brackets: counting them (in C) spares
    # the walk for nearly every real callback.
    brackets = body.count(b"{") + body.count(b"[")
    if brackets > max_depth and _depth(data) > max_depth:
        raise Refusal("json_too_deep", f"JSON nesting deeper than {max_depth} levels")
    return data


def _depth(value: Any) -> int:
    # Iterative so hostile nesting cannot exhaust the Python stack.
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def parse_time(value: Any, field: str) -> datetime:
    """Any ISO-8601 form providers send (Z, offsets, fractions, none) as an aware UTC datetime.

    A time without an offset is taken as UTC: every seed provider documents its times in UTC
    or with an offset.
    """
    if not isinstance(value, str) or not value.strip():
        raise Refusal("invalid_time", f"{field}: expected an ISO-8601 timestamp, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip())
        # An offset can push the calendar's ends out of datetime's range: OverflowError.
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise Refusal("invalid_time", f"{field}: not an ISO-8601 timestamp: {value!r}") from None


def optional_time(value: Any, field: str) -> datetime | None:
    return None if value in (None, "") else parse_time(value, field)


# Parsing a number costs tens of microseconds and the same few numbers (ours, above all) recur
# in most callbacks.
@lru_cache(maxsize=65536)
def normalize_number(raw: str, default_country: str | None) -> str:
    """E.164 where the form is unambiguous; otherwise the number as sent (trimmed).

    '+...' numbers are parsed as international. Bare digits longer than a short code are read
    as national numbers of `default_country` when one is configured, else as international
    digits without the '+' (how Sinch and OpenMarket send them) if that makes a valid number.
    """
    number = raw.strip()
    digits = "".join(ch for ch in number if ch.isdigit())
    if not digits or len(digits) <= MAX_SHORT_CODE_DIGITS:
        return number
    candidates: list[tuple[str, str | None]] = []
    if number.startswith("+"):
        candidates.append((number, None))
    else:
        if default_country:
            candidates.append((digits, default_country))
        candidates.append(("+" + digits, None))
    for text, region in candidates:
        try:
            parsed = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return number


def expect_str(value: Any, field: str, *, required: bool = False) -> str | None:
    """A string field; numbers are accepted and kept as their text (ids are often numeric)."""
    if value is None or value == "":
        if required:
            raise Refusal("missing_field", f"{field} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Refusal("invalid_field", f"{field}: expected a string, got {type(value).__name__}")
    return str(value)


def expect_str_list(value: Any, field: str) -> list[str]:
    """A list of strings; a single string is accepted as a list of one (providers do both)."""
    if value is None:
        return []
    if isinstance(value, str | int) and not isinstance(value, bool):
        return [str(value)]
    if not isinstance(value, list):
        raise Refusal("invalid_field", f"{field}: expected a list of strings")
    return [s for item in value if (s := expect_str(item, field)) is not None]


class Parties(NamedTuple):
    owner: str
    from_: str | None
    to: list[str]
    raw: dict[str, str]  # `raw.*` attributes: the numbers as sent, where E.164 changed them


def normalize_parties(
    raw_owner: str, raw_from: str | None, raw_to: list[str], country: str | None
) -> Parties:
    """Owner, from and to in E.164 where unambiguous, keeping the numbers as sent aside."""
    owner = normalize_number(raw_owner, country)
    sender = None if raw_from is None else normalize_number(raw_from, country)
    recipients = [normalize_number(n, country) for n in raw_to]
    raw: dict[str, str] = {}
    if raw_owner != owner:
        raw["raw.owner"] = raw_owner
    if raw_from is not None and raw_from != sender:
        raw["raw.from"] = raw_from
    if raw_to != recipients:
        raw["raw.to"] = attribute_value(raw_to)
    return Parties(owner, sender, recipients, raw)


def media_from_url(uri: str) -> Media:
    """A media URL as Media, named after its last path segment (query and fragment aside).

    A URL without a path, or ending in "/", names no file.
    """
    path = uri.split("?", 1)[0].split("#", 1)[0]
    if "://" in path:
        path = path.split("://", 1)[1]
    name = unquote(path.rsplit("/", 1)[-1]) if "/" in path else ""
    return Media(uri=uri, filename=name or None)


# The Avro `segment_count` is an int: anything larger would fail to encode.
MAX_SEGMENTS = 2**31 - 1


def segment_count(value: Any, attributes: dict[str, str], key: str) -> int | None:
    """A usable segment count, or None with the odd value kept in attributes under `key`."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEGMENTS:
        return value
    if value is not None:
        attributes[key] = attribute_value(value)
    return None
