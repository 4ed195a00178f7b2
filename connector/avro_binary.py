"""Avro binary encoding, compiled once per schema into one writer per type.

fastavro's schemaless writer took 37 us for a Bandwidth v2 record, the largest single cost of a
JSON callback (bench/results/2026-12-02-speed.md): it resolves each union and converts each
logical type per value, generically. Compiled for the schema, the same bytes take 16 us (cavro,
a Cython codec, also 15 us, but pulls in numpy). Only the types the connector's schemas use are
supported; any other fails at start-up, when the schema is compiled. Values are checked as
they are written: a record that does not fit the schema raises (the pipeline dead-letters it),
and tests/unit/test_avro_binary.py checks the bytes against fastavro's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Out = bytearray
Writer = Callable[[Out, Any], None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LONG = 1 << 63
_INT = 1 << 31


def _long(out: Out, n: int) -> None:
    if 0 <= n < 64:  # one byte: lengths, enum indexes, small counts
        out.append(n << 1)
        return
    if not -_LONG <= n < _LONG:
        raise ValueError(f"{n} does not fit an Avro long")
    n = (n << 1) ^ (n >> 63)  # zig-zag
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _int(out: Out, n: int) -> None:
    if not -_INT <= n < _INT:
        raise ValueError(f"{n} does not fit an Avro int")
    _long(out, n)


def _bytes(out: Out, b: bytes) -> None:
    n = len(b)
    if n < 64:
        out.append(n << 1)
    else:
        _long(out, n)
    out += b


def _string(out: Out, s: str) -> None:
    _bytes(out, s.encode())


def _timestamp_micros(out: Out, value: datetime | int) -> None:
    if isinstance(value, datetime):
        delta = value - _EPOCH  # a naive datetime raises: every time we write is UTC
        value = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    _long(out, value)


_PRIMITIVES: dict[str, Writer] = {"string": _string, "bytes": _bytes, "long": _long, "int": _int}


def writer(schema: Any) -> Callable[[Any], bytes]:
    """The encoder of `schema` (parsed JSON): a record in, its Avro binary out."""
    write = _compile(schema)

    def encode(value: Any) -> bytes:
        out = bytearray()
        write(out, value)
        return bytes(out)

    return encode


def _compile(schema: Any) -> Writer:
    if isinstance(schema, str):
        if schema not in _PRIMITIVES:
            raise NotImplementedError(f"Avro type {schema!r}")
        return _PRIMITIVES[schema]
    if isinstance(schema, list):
        return _nullable(schema)
    kind = schema["type"]
    if schema.get("logicalType") == "timestamp-micros" and kind == "long":
        return _timestamp_micros
    if kind == "record":
        return _record(schema)
    if kind == "enum":
        return _enum(schema)
    if kind == "array":
        return _array(_compile(schema["items"]))
    if kind == "map":
        return _map(_compile(schema["values"]))
    return _compile(kind)


def _nullable(union: list[Any]) -> Writer:
    # The only unions the schemas hold: null or one type, null first (so null defaults work).
    if len(union) != 2 or union[0] != "null":
        raise NotImplementedError(f"Avro union {union!r}: only [null, T]")
    inner = _compile(union[1])

    def write(out: Out, value: Any) -> None:
        if value is None:
            out.append(0)  # branch 0
        else:
            out.append(2)  # branch 1, zig-zag
            inner(out, value)

    return write


def _record(schema: dict[str, Any]) -> Writer:
    fields = [(f["name"], _compile(f["type"])) for f in schema["fields"]]

    def write(out: Out, value: dict[str, Any]) -> None:
        for name, field in fields:
            field(out, value[name])

    return write


def _enum(schema: dict[str, Any]) -> Writer:
    index = {symbol: i for i, symbol in enumerate(schema["symbols"])}

    def write(out: Out, value: str) -> None:
        _long(out, index[value])

    return write


def _array(item: Writer) -> Writer:
    def write(out: Out, values: list[Any]) -> None:
        if values:  # one block, then the empty block that ends the array
            _long(out, len(values))
            for value in values:
                item(out, value)
        out.append(0)

    return write


def _map(value_writer: Writer) -> Writer:
    def write(out: Out, values: dict[str, Any]) -> None:
        if values:
            _long(out, len(values))
            for key, value in values.items():
                _string(out, key)
                value_writer(out, value)
        out.append(0)

    return write
