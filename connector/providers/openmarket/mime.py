"""A tolerant multipart/mixed reader for OpenMarket MO bodies.

Not python-multipart's MultipartParser: it requires CRLF line ends, a blank line after each
part's headers and a body that starts at the first delimiter, while MIME allows a preamble and
OpenMarket's documented form has LF-only lines and no blank line. Finding delimiter lines with
a regex is simple, runs in C, and lets the part limits stop the scan early.

What is tolerated: a preamble and an epilogue (ignored, as RFC 2046 says), CRLF or LF line ends,
spaces after a delimiter or a header value, part headers in any case, no blank line between a
part's headers and its body, and a missing closing delimiter (HTTP framing already delimits
the body, so the last part simply runs to its end).
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from urllib.parse import unquote

import pybase64
from python_multipart.multipart import parse_options_header

from connector.providers.contract import Refusal
from connector.providers.fields import decode_text, text_codec
from connector.providers.openmarket.options import PartLimits

# Lines looked at for a part's headers; a longer run without a blank line is read as the
# documented form without one (so Content-* lines are headers and the rest is body).
MAX_HEADER_LINES = 32
# A longer line is body, never a header: a 9 MB Content-Id became a record Kafka refused.
MAX_HEADER_LINE_BYTES = 8192
# Lines that start like a delimiter but are none (they cannot occur in base64, nor in text but
# by design): past this many the body is refused rather than scanned on (a 1-character
# boundary over 10 MB of dashes took 5 s to refuse).
MAX_FALSE_DELIMITERS = 1000
# RFC 2046: 1-70 characters of these, the last one not a space.
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_EXTENDED_PARAMETER = re.compile(r"""filename\*[ \t]*=[ \t]*([^;\s]+)""", re.IGNORECASE)

# Greedy value, stripped afterwards: a lazy value before optional spaces backtracks
# quadratically on long runs of spaces.
_HEADER = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*:(.*)")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_WHITESPACE = b" \t\r\n\v\f"
_DELIMITER_END = re.compile(rb"(--)?[ \t]*(?:\r?\n|\Z)")
_IDENTITY_ENCODINGS = {"7bit", "8bit", "binary"}


@dataclass(frozen=True, slots=True)
class Part:
    """One body part: headers with lower-cased names (values as latin-1 text, so no byte is
    lost), its media type without parameters (None when it has no Content-Type), and its
    content with the transfer encoding undone."""

    headers: dict[str, str]
    media_type: str | None
    params: dict[str, str]
    content: bytes


def options(value: str) -> tuple[str, dict[str, str]]:
    """A header value with parameters: the lower-cased value and its parameters (names lower-cased,
    quotes removed)."""
    try:
        kind, params = parse_options_header(value)
    except UnicodeEncodeError:
        # parse_options_header works on latin-1; HTTP header values are latin-1 by definition.
        raise Refusal("invalid_header", f"header value is not latin-1: {value!r}") from None
    return kind.decode("latin-1"), {
        k.decode("latin-1"): v.decode("latin-1") for k, v in params.items()
    }


def read_parts(body: bytes, boundary: bytes, limits: PartLimits) -> list[Part]:
    """The parts between the delimiters of `boundary`; refuses past the configured limits before
    reading further."""
    if not _BOUNDARY.fullmatch(boundary):
        raise Refusal("invalid_boundary", "the boundary is not 1-70 RFC 2046 characters")
    # A delimiter line: the boundary, "--" if it closes, padding, then the line end. Found with
    # bytes.find (memchr speed over hundreds of KB of base64), at line starts only, then checked
    # with the pattern.
    marker = b"--" + boundary
    parts: list[Part] = []
    start: int | None = None  # where the content of the open part begins
    false_delimiters = 0
    at = 0 if body.startswith(marker) else _line_start(body, marker, 0)
    while at != -1:
        match = _DELIMITER_END.match(body, at + len(marker))
        if match is None:
            false_delimiters += 1
            if false_delimiters > MAX_FALSE_DELIMITERS:
                raise Refusal(
                    "invalid_multipart", "too many lines look like delimiters and are not"
                )
            at = _line_start(body, marker, at + 1)
            continue
        if start is not None:
            parts.append(_part(body, start, _content_end(body, start, at), limits))
        if match.group(1):
            start = None
            break
        if len(parts) == limits.max_parts:
            raise Refusal("too_many_parts", f"more than {limits.max_parts} body parts", status=413)
        start = match.end()
        at = _line_start(body, marker, start - 1)
    if start is not None:
        # No closing delimiter: the last part ends with the body (and its last line break).
        end = len(body) - (2 if body.endswith(b"\r\n") else 1 if body.endswith(b"\n") else 0)
        parts.append(_part(body, start, max(start, end), limits))
    if not parts:
        raise Refusal("no_parts", "no body part delimited by the Content-Type boundary")
    return parts


def _line_start(body: bytes, marker: bytes, start: int) -> int:
    """Where the next line after `start` that starts with `marker` starts, or -1.

    Found by its first byte, a dash, which base64 never holds: one memchr crosses a whole
    image, where finding the line break and marker together (two-way search, stopping at every
    line break) took 8 % of a multipart callback's CPU. Past a few dashes that start no
    delimiter (a text part's), the whole pattern is searched for: bounded either way.
    """
    at = start + 1
    for _ in range(_DASH_TRIES):
        at = body.find(b"-", at)
        if at == -1:
            return -1
        if body[at - 1] == 0x0A and body.startswith(marker, at):
            return at
        at += 1
    at = body.find(b"\n" + marker, at - 1)
    return at if at == -1 else at + 1


_DASH_TRIES = 64


def _content_end(body: bytes, start: int, delimiter_at: int) -> int:
    # The line break before a delimiter belongs to the delimiter, not to the content.
    end = delimiter_at - 1
    if end > start and body[end - 1] == 0x0D:
        end -= 1
    return max(start, end)


def _part(body: bytes, start: int, end: int, limits: PartLimits) -> Part:
    """The part in body[start:end], read in place: its content is the one copy made."""
    headers, content_at = _headers(body, start, end)
    payload = body[content_at:end]
    media_type, params = options(headers["content-type"]) if "content-type" in headers else ("", {})
    content = _decode(payload, headers.get("content-transfer-encoding"), media_type, params)
    if len(content) > limits.max_part_bytes:
        raise Refusal(
            "part_too_large", f"a body part over {limits.max_part_bytes} bytes", status=413
        )
    return Part(headers, media_type or None, params, content)


def _headers(body: bytes, start: int, end: int) -> tuple[dict[str, str], int]:
    """The headers of the part in body[start:end], and where its content starts."""
    lines: list[tuple[int, str | None, str]] = []  # (offset, name or None if folded, value)
    pos = start
    for _ in range(MAX_HEADER_LINES):
        if pos >= end:
            break
        eol = body.find(b"\n", pos, end)
        after = end if eol == -1 else eol + 1
        if after - pos > MAX_HEADER_LINE_BYTES:
            break
        line = body[pos:after].rstrip(b"\r\n")
        if not line.strip(b" \t"):
            # The standard form: every line before the blank line is a header.
            return _named(lines), after
        if line[:1] in (b" ", b"\t"):
            lines.append((pos, None, line.strip(b" \t").decode("latin-1")))
        elif match := _HEADER.fullmatch(line):
            key, text = (group.strip(b" \t").decode("latin-1") for group in match.groups())
            lines.append((pos, key.lower(), text))
        else:
            break
        pos = after
    # No blank line (OpenMarket's documented form): only unfolded Content-* lines count as
    # headers, the only ones RFC 2045 gives a meaning in a part, so a body line like "Note: hi"
    # or indented JSON stays in the body.
    count = 0
    while count < len(lines) and (lines[count][1] or "").startswith("content-"):
        count += 1
    content_at = lines[count][0] if count < len(lines) else pos
    return _named(lines[:count]), content_at


def _named(lines: list[tuple[int, str | None, str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    name = None
    for _, key, value in lines:
        if key is not None:
            name, headers[key] = key, value
        elif name is not None:  # a folded line continues the header before it
            headers[name] = f"{headers[name]} {value}"
    return headers


def _decode(payload: bytes, encoding: str | None, media_type: str, params: dict[str, str]) -> bytes:
    encoding = (encoding or "").strip().lower()
    if not encoding:
        return _maybe_base64(payload, media_type, params.get("charset"))
    if encoding == "base64":
        try:
            return _b64decode(payload)
        except binascii.Error as exc:
            raise Refusal("invalid_base64", f"a base64 body part does not decode: {exc}") from None
    if encoding == "quoted-printable":
        return binascii.a2b_qp(payload)
    if encoding in _IDENTITY_ENCODINGS:
        return payload
    raise Refusal("unsupported_transfer_encoding", f"Content-Transfer-Encoding {encoding!r}")


def _b64decode(text: bytes, *, line_breaks_only: bool = False) -> bytes:
    """Strict base64 that ignores line breaks (and, unless told otherwise, other whitespace)."""
    decoded = _wrapped_b64decode(text)
    if decoded is not None:
        return decoded
    compact = text.replace(b"\r", b"").replace(b"\n", b"")
    try:
        return pybase64.b64decode(compact, validate=True)
    except binascii.Error:
        if line_breaks_only:
            raise
    # The rare encoder that pads lines with blanks: the slow path, still strict.
    return pybase64.b64decode(text.translate(None, _WHITESPACE), validate=True)


def _wrapped_b64decode(text: bytes) -> bytes | None:
    """`text` decoded when it is what encoders write: lines of one width, one line break
    between them (CRLF or LF), padding only at the end, nothing but the alphabet in them;
    None for anything else, which the strict path then reads (or refuses).

    Deleting the line breaks of a 200 KB image cost ~290 us (bytes.replace, twice for CRLF),
    30 times its SIMD decode. pybase64's lenient decode skips them itself (~90 us); the line
    breaks are checked where they must be (strided slices), and the decoded length shows that
    nothing else was skipped: each character dropped changes it, or fails the padding.
    """
    width = text.find(b"\n")
    if width <= 0:
        return None  # one line: the strict path has no line breaks to delete
    breaks = b"\r\n" if text[width - 1] == 0x0D else b"\n"
    width -= len(breaks) - 1
    stride = width + len(breaks)
    end = len(text) - len(breaks) if text.endswith(breaks) else len(text)
    lines = len(text[width:end:stride])  # line breaks between lines, one per full line
    if not (0 < end - lines * stride <= width):
        return None  # the last line is empty or longer than the others
    for offset, byte in enumerate(breaks):
        found = text[width + offset : end : stride]
        if len(found) != lines or found.count(byte) != lines:
            return None
    characters = end - lines * len(breaks)
    last = text[max(0, end - 4) : end]
    padding = len(last) - len(last.rstrip(b"="))
    first_pad = text.find(b"=")
    if characters % 4 or padding > 2 or (first_pad != -1 and first_pad != end - padding):
        return None
    try:
        decoded = pybase64.b64decode(text)
    except binascii.Error:
        return None
    return decoded if len(decoded) == characters // 4 * 3 - padding else None


def _maybe_base64(payload: bytes, media_type: str, charset: str | None) -> bytes:
    """No Content-Transfer-Encoding: OpenMarket documents its parts as base64 without a header
    saying so, yet draws its text part raw. Decode only what looks like an encoder's output:
    nothing but the base64 alphabet and line breaks (raw text has spaces), strictly padded.
    Binary media never looks like that raw. A raw single word can ("Nips" is valid base64), so
    a text part must also decode to clean text in its charset; a word of 4 or 8 letters may
    still pass, which only a Content-Transfer-Encoding header rules out."""
    if not payload.strip(_WHITESPACE):
        return payload
    try:
        decoded = _b64decode(payload.strip(_WHITESPACE), line_breaks_only=True)
    except binascii.Error:
        return payload
    if media_type.startswith("text/") and not _clean_text(decoded, charset):
        return payload
    return decoded


def _clean_text(content: bytes, charset: str | None) -> bool:
    try:
        text = content.decode(text_codec(charset) or "utf-8")
    except ValueError:
        return False
    return _CONTROL_CHARS.search(text) is None


def text_of(content: bytes, charset: str | None) -> str:
    """A text part's text in its charset (UTF-8 when absent or no text encoding), bad bytes
    replaced: utf-7 and the escape codecs gave lone surrogates no record can hold."""
    return decode_text(content, charset)


def extended_filename(disposition: str) -> str | None:
    """RFC 2231's `filename*=charset'language'percent-encoded` (what mail and HTTP clients send
    for names beyond ASCII), decoded; None when absent. python-multipart drops the parameter.
    """
    match = _EXTENDED_PARAMETER.search(disposition)
    if match is None:
        return None
    charset, sep, rest = match.group(1).strip('"').partition("'")
    _language, sep2, encoded = rest.partition("'")
    if not (sep and sep2):
        return None
    return unquote(encoded, encoding=text_codec(charset) or "utf-8", errors="replace") or None
