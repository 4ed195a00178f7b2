"""Shared helpers for provider parsers: JSON, timestamps and phone numbers.

Everything here raises `Refusal` (never anything else) on bad input, so provider modules can
call these without their own try/except around each field.
"""

from __future__ import annotations

import codecs
import encodings
import encodings.aliases
import json
import pkgutil
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote

import orjson
import phonenumbers

from connector.providers.contract import Limits, Refusal
from connector.record import Direction, Media, attribute_value
from connector.record import event_id as derive_event_id

MAX_JSON_DEPTH = 32
# Field and element names become attribute keys; real ones are a few words long.
MAX_NAME_CHARS = 128
# Short codes are 3-8 digits in the markets these providers serve; never re-format them.
MAX_SHORT_CODE_DIGITS = 8
# No phone number is longer (E.164: 15 digits; with spaces, dashes and a prefix, well under).
MAX_NUMBER_CHARS = 64
# The longest file name filesystems and object stores agree on, in UTF-8 bytes.
MAX_FILENAME_BYTES = 255
_DEFAULT_LIMITS = Limits()

# orjson reads integers past 64 bits as floats (their digits lost); the standard library reads
# them exactly. 19 digits may already be past -2**63. Found as a run of 19 zeros once every
# digit is a zero: 16 ms per 10 MB, where the regex \d{19} took 140 ms.
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= i <= 0x39 else 0x78 for i in range(256))
_LONG_INTEGER = b"0" * 19
# Unrolled (runs of plain characters, then one escape): 60 ms per 10 MB string, where the
# alternation per character took 1.2 s.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def parse_json(
    body: bytes,
    *,
    max_depth: int = MAX_JSON_DEPTH,
    max_elements: int = _DEFAULT_LIMITS.max_elements,
) -> Any:
    """JSON within a budget: at most `max_elements` values (containers and list items or object
    members), nested at most `max_depth` deep; refused before parsing when over budget."""
    brackets = body.count(b"{") + body.count(b"[")
    _check_json_budget(body, brackets, max_elements)
    try:
        if _LONG_INTEGER in body.translate(_DIGITS_AS_ZEROS):
            data = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
            _refuse_lone_surrogates(data)
        else:
            data = orjson.loads(body)
    except (ValueError, RecursionError) as exc:  # orjson.JSONDecodeError is a ValueError
        raise Refusal("invalid_json", f"body is not valid JSON: {exc}") from None
    # Nesting cannot be deeper than the number of opening brackets: counting them (in C) spares
    # the walk for nearly every real callback.
    if brackets > max_depth and _depth(data) > max_depth:
        raise Refusal("json_too_deep", f"JSON nesting deeper than {max_depth} levels")
    return data


def _check_json_budget(body: bytes, brackets: int, max_elements: int) -> None:
    # Every value but the first of a container follows a comma, so brackets plus commas bound
    # the values parsing would build. Counted in C (~1 ms per MB); only a body over the budget
    # is looked at again, for the commas and brackets inside its strings, which are text.
    # More strings than twice the budget (a key and a value each) are over it anyway: refused
    # before looking into 2 million of them (0.6 s).
    count = brackets + body.count(b",")
    if count <= max_elements:
        return
    if body.count(b'"') > 4 * max_elements or count - _count_in_strings(body) > max_elements:
        raise Refusal(
            "too_many_elements", f"JSON body over the {max_elements}-value budget", status=413
        )


def _count_in_strings(body: bytes) -> int:
    # Summed string by string (at most 4 x the budget of them): 6 ms over 10 MB, where
    # removing the strings first copied the body (40 ms).
    total = 0
    for match in _JSON_STRING.finditer(body):
        text = match.group()
        total += text.count(b"{") + text.count(b"[") + text.count(b",")
    return total


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _refuse_lone_surrogates(data: Any) -> None:
    # What orjson refuses and the standard library lets through ("\ud800"): no Avro string
    # can hold it. Within the value budget, so the walk is bounded.
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            node.encode("utf-8")  # UnicodeEncodeError, a ValueError, on a lone surrogate


def _depth(value: Any) -> int:
    # Iterative so hostile nesting cannot exhaust the Python stack.
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        children: Iterable[object]
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def parse_form(
    body: bytes, *, max_elements: int = _DEFAULT_LIMITS.max_elements
) -> list[tuple[str, str]]:
    """An application/x-www-form-urlencoded body as (name, value) pairs in order, blank values
    kept, within a budget of `max_elements` pairs; UTF-8 (what Twilio and Plivo send)."""
    if body.count(b"&") >= max_elements:
        raise Refusal("too_many_elements", f"form over the {max_elements}-field budget", 413)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refusal("invalid_form", f"body is not a UTF-8 form: {exc}") from None
    if any(len(name) > MAX_NAME_CHARS for name, _ in pairs):
        raise Refusal("name_too_long", f"a form field name over {MAX_NAME_CHARS} characters", 413)
    return pairs


def parse_unique_form(
    body: bytes, *, max_elements: int = _DEFAULT_LIMITS.max_elements
) -> dict[str, str]:
    """A form's fields by name, each sent once: the providers never repeat one, and parsers
    disagree on which of two copies counts (`duplicate_field`)."""
    fields: dict[str, str] = {}
    for name, value in parse_form(body, max_elements=max_elements):
        if name in fields:
            raise Refusal("duplicate_field", f"{name!r} is sent more than once")
        fields[name] = value
    return fields


def media_type(content_type: str) -> str:
    """The media type of a Content-Type value: parameters aside, lower-cased."""
    return content_type.split(";", 1)[0].strip().lower()


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


def normalize_number(raw: str, default_country: str | None) -> str:
    """E.164 where the form is unambiguous; otherwise the number as sent (trimmed).

    '+...' numbers are parsed as international. Bare digits longer than a short code are read
    as national numbers of `default_country` when one is configured, else as international
    digits without the '+' (how Sinch and OpenMarket send them) if that makes a valid number.
    """
    if len(raw) > MAX_NUMBER_CHARS:
        # Not a phone number, and kept out of the cache: 5 MB "numbers" grew it by 210 MB.
        return raw.strip()
    return _normalize_number(raw, default_country)


# Parsing a number costs tens of microseconds and the same few numbers (ours, above all) recur
# in most callbacks. Bounded: 65,536 entries of at most MAX_NUMBER_CHARS.
@lru_cache(maxsize=65536)
def _normalize_number(raw: str, default_country: str | None) -> str:
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
    if required:
        return require_str(value, field)
    return None if value is None or value == "" else _text(value, field)


def require_str(value: Any, field: str) -> str:
    """A string field that must be there and not empty (`missing_field`)."""
    if value is None or value == "":
        raise Refusal("missing_field", f"{field} is required")
    return _text(value, field)


def _text(value: Any, field: str) -> str:
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
    cc: list[str]
    bcc: list[str]


# A message's direction as "in"/"out" (Bandwidth's v1 and v2 APIs).
IN_OUT: dict[str, Direction] = {"in": "inbound", "out": "outbound"}


def our_number(direction: Direction, raw_from: str | None, raw_to: Sequence[str]) -> str | None:
    """Our number when a callback does not name it: the sender of an outbound message, the
    first recipient of an inbound one."""
    return raw_from if direction == "outbound" else (raw_to[0] if raw_to else None)


def normalize_parties(
    raw_owner: str | None,
    raw_from: str | None,
    raw_to: list[str],
    country: str | None,
    raw_cc: Sequence[str] = (),
    raw_bcc: Sequence[str] = (),
    *,
    max_recipients: int = _DEFAULT_LIMITS.max_recipients,
) -> Parties:
    """Owner, from and recipients in E.164 where unambiguous, keeping the numbers as sent aside.

    The owner becomes the Kafka key, so a blank one is refused, as are more recipients than
    `max_recipients` (100,000 of them made a record Kafka refused on every retry).
    """
    if raw_owner is None or not raw_owner.strip():
        raise Refusal("missing_field", "our number (the owner) is missing or blank")
    recipients_sent = len(raw_to) + len(raw_cc) + len(raw_bcc)
    if recipients_sent > max_recipients:
        raise Refusal(
            "too_many_recipients",
            f"{recipients_sent} recipients, over the {max_recipients} budget",
            status=413,
        )
    owner = normalize_number(raw_owner, country)
    sender = None if raw_from is None else normalize_number(raw_from, country)
    raw: dict[str, str] = {}
    if raw_owner != owner:
        raw["raw.owner"] = raw_owner
    if raw_from is not None and raw_from != sender:
        raw["raw.from"] = raw_from
    lists = []
    for key, numbers in (("to", raw_to), ("cc", raw_cc), ("bcc", raw_bcc)):
        mapped = [normalize_number(n, country) for n in numbers]
        if list(numbers) != mapped:
            raw[f"raw.{key}"] = attribute_value(list(numbers))
        lists.append(mapped)
    to, cc, bcc = lists
    return Parties(owner, sender, to, raw, cc, bcc)


def event_id(provider: str, *identity: object) -> str:
    """The event's id from the provider's identity of it, refusing control characters in it.

    Identity parts are joined with control characters, so a part holding one could give another
    event's id (answered 200 and never produced); refusing them keeps the join unambiguous and
    every id already published unchanged.
    """
    for part in identity:
        if isinstance(part, str) and _CONTROL.search(part):
            raise Refusal("invalid_id", f"control character in an id: {part!r}")
    return derive_event_id(provider, *identity)


MEDIA_URI_SCHEMES = ("http", "https")


def media_from_urls(
    urls: Sequence[str],
    attributes: dict[str, str],
    max_media: int,
    field: str,
    content_types: Sequence[str | None] = (),
) -> list[Media]:
    """Provider-hosted media URLs as Media, at most `max_media` of them, each with its content
    type when the provider gives them (`content_types`, in the same order).

    Only http(s) URLs become media: a `file:`, `data:` or `javascript:` URI (or one that looks
    like our media store's) is no provider's media host. Such a URI is kept in attributes with
    a code (and its content type), so nothing is lost. File names are made safe; the name as
    sent stays in attributes. Their status is `provider`: the content is still at the provider
    (the mirror fetches it).
    """
    if len(urls) > max_media:
        raise Refusal(
            "too_many_media", f"{field}: {len(urls)} media, over the {max_media} budget", 413
        )
    media = []
    for i, uri in enumerate(urls):
        content_type = content_types[i] if i < len(content_types) else None
        scheme, sep, _ = uri.partition(":")
        if not sep or scheme.lower() not in MEDIA_URI_SCHEMES or _CONTROL.search(uri):
            attributes[f"media.{i}.refused"] = attribute_value(
                {"code": "unsupported_media_uri", "uri": uri}
            )
            if content_type is not None:
                attributes[f"media.{i}.contentType"] = content_type
            continue
        raw_name = _url_filename(uri)
        name = safe_filename(raw_name)
        if raw_name and name != raw_name:
            attributes[f"media.{i}.filename"] = raw_name
        media.append(Media(uri=uri, content_type=content_type, filename=name, status="provider"))
    return media


def _url_filename(uri: str) -> str | None:
    """The last path segment of a URL, percent-decoded (query and fragment aside).

    A URL without a path, or ending in "/", names no file.
    """
    path = uri.split("?", 1)[0].split("#", 1)[0]
    if "://" in path:
        path = path.split("://", 1)[1]
    return (unquote(path.rsplit("/", 1)[-1]) if "/" in path else "") or None


def safe_filename(raw: str | None) -> str | None:
    """A name that is safe to save a file under: the last segment of either slash, without
    control characters (NUL, CR, LF...), never "." or "..", at most 255 UTF-8 bytes.

    Names come from senders: "../../../etc/passwd" or "/etc/cron.d/x" must not reach a consumer
    that saves media under their name.
    """
    if not raw:
        return None
    name = _CONTROL.sub("", raw.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if name in ("", ".", ".."):
        return None
    encoded = name.encode("utf-8", "surrogatepass")
    if len(encoded) > MAX_FILENAME_BYTES:
        name = encoded[:MAX_FILENAME_BYTES].decode("utf-8", "ignore")
    return name


# Codecs that are no text encoding of a message: utf-7 and the escape codecs decode to lone
# surrogates (which no Avro string holds), the rest are not charsets at all.
_NOT_CHARSETS = {
    "utf_7", "unicode_escape", "raw_unicode_escape", "punycode", "idna", "undefined", "charmap",
    "mbcs", "oem", "base64_codec", "bz2_codec", "hex_codec", "quopri_codec", "rot_13",
    "uu_codec", "zlib_codec",
}  # fmt: skip
# Charset labels (normalised) to codec names, fixed at import: only these are ever looked up,
# so attacker-chosen names never reach the codec registry, which caches every name it is
# asked for, misses included (+224 MB from distinct names).
_CHARSETS = {
    label: codec for label, codec in encodings.aliases.aliases.items() if codec not in _NOT_CHARSETS
} | {
    module.name: module.name
    for module in pkgutil.iter_modules(encodings.__path__)
    if module.name not in _NOT_CHARSETS and module.name != "aliases"
}


def text_codec(charset: str | None) -> str | None:
    """The codec of a charset label if it names a real text encoding, else None."""
    if not charset or len(charset) > 40:
        return None
    return _CHARSETS.get(encodings.normalize_encoding(charset.strip().lower()))


def decode_text(content: bytes, charset: str | None) -> str:
    """Text in its charset (UTF-8 when absent, unknown or not a text encoding), bad bytes
    replaced; never a lone surrogate."""
    text = content.decode(text_codec(charset) or "utf-8", "replace")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A surrogate pair's half can still come out of some decoders; no Avro string holds one.
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


codecs.lookup("utf-8")  # the fallback, looked up once here rather than on a request


# The Avro `segment_count` is an int: anything larger would fail to encode.
MAX_SEGMENTS = 2**31 - 1


def segment_count(value: Any, attributes: dict[str, str], key: str) -> int | None:
    """A usable segment count, or None with the odd value kept in attributes under `key`."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEGMENTS:
        return value
    if value is not None:
        attributes[key] = attribute_value(value)
    return None
