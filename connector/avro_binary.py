"""Avro binary encoding, compiled once per schema into the source of one function.

fastavro's schemaless writer took 37 us for a Bandwidth v2 record, the largest single cost of a
JSON callback (bench/results/2026-12-02-speed.md): it resolves each union and converts each
logical type per value, generically. Compiled for the schema, the same bytes take 16 us (cavro,
a Cython codec, also 15 us, but pulls in numpy), and 6.3 us generated (`writer`). Only the
types the connector's schemas use are supported; any other fails at start-up, when the schema
is compiled. Values are checked as they are written: a record that does not fit the schema
raises (the pipeline dead-letters it), and tests/unit/test_avro_binary.py checks the bytes
against fastavro's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Out = bytearray

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


def _timestamp_micros(out: Out, value: datetime | int) -> None:
    if isinstance(value, datetime):
        delta = value - _EPOCH  # a naive datetime raises: every time we write is UTC
        value = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    _long(out, value)


def writer(schema: Any) -> Callable[[Any], bytes]:
    """The encoder of `schema` (parsed JSON): a record in, its Avro binary out.

    Generated as the source of one function with every field's writing inlined: per-field
    writer functions, one call per value (two per nullable string), took 8.6 us for a Bandwidth
    v2 record, the generated function 6.3 us (5.5 with its helpers compiled by mypyc; same
    session, bench/results/2026-12-02-steps-s4.md).
    """
    generated = _Generator()
    lines = ["def encode(value):", "    out = bytearray()"]
    lines += generated.write(schema, "value", 1)
    lines.append("    return bytes(out)")
    namespace: dict[str, Any] = {
        "_long": _long, "_int": _int, "_timestamp_micros": _timestamp_micros, **generated.enums
    }  # fmt: skip
    exec(compile("\n".join(lines), "<avro writer>", "exec"), namespace)
    encode: Callable[[Any], bytes] = namespace["encode"]
    return encode


class _Generator:
    """The statements writing a value of a schema into `out`, fresh local names for each."""

    def __init__(self) -> None:
        self.enums: dict[str, dict[str, int]] = {}  # symbol indexes, by the name they go by
        self._names = 0

    def _name(self) -> str:
        self._names += 1
        return f"v{self._names}"

    def write(self, schema: Any, value: str, depth: int) -> list[str]:
        pad = "    " * depth
        if isinstance(schema, list):
            return self._nullable(schema, value, depth)
        if isinstance(schema, str):
            return self._primitive(schema, value, pad)
        kind = schema["type"]
        if schema.get("logicalType") == "timestamp-micros" and kind == "long":
            return [f"{pad}_timestamp_micros(out, {value})"]
        if kind == "record":
            record = self._name()
            lines = [f"{pad}{record} = {value}"]
            for field in schema["fields"]:
                lines += self.write(field["type"], f"{record}[{field['name']!r}]", depth)
            return lines
        if kind == "enum":
            index = self._name()
            symbols = schema["symbols"]
            self.enums[f"_{index}"] = {symbol: i for i, symbol in enumerate(symbols)}
            if len(symbols) <= 64:  # every index is one byte
                return [f"{pad}out.append(_{index}[{value}] << 1)"]
            return [f"{pad}_long(out, _{index}[{value}])"]
        if kind == "array":
            items, item = self._name(), self._name()
            return [
                f"{pad}{items} = {value}",
                f"{pad}if {items}:  # one block, then the empty block that ends the array",
                f"{pad}    _long(out, len({items}))",
                f"{pad}    for {item} in {items}:",
                *self.write(schema["items"], item, depth + 2),
                f"{pad}out.append(0)",
            ]
        if kind == "map":
            entries, key, entry = self._name(), self._name(), self._name()
            return [
                f"{pad}{entries} = {value}",
                f"{pad}if {entries}:",
                f"{pad}    _long(out, len({entries}))",
                f"{pad}    for {key}, {entry} in {entries}.items():",
                *self._primitive("string", key, pad + "        "),
                *self.write(schema["values"], entry, depth + 2),
                f"{pad}out.append(0)",
            ]
        return self.write(kind, value, depth)

    def _nullable(self, union: list[Any], value: str, depth: int) -> list[str]:
        # The only unions the schemas hold: null or one type, null first (so null defaults work).
        if len(union) != 2 or union[0] != "null":
            raise NotImplementedError(f"Avro union {union!r}: only [null, T]")
        pad, present = "    " * depth, self._name()
        return [
            f"{pad}{present} = {value}",
            f"{pad}if {present} is None:",
            f"{pad}    out.append(0)  # branch 0",
            f"{pad}else:",
            f"{pad}    out.append(2)  # branch 1, zig-zag",
            *self.write(union[1], present, depth + 1),
        ]

    def _primitive(self, kind: str, value: str, pad: str) -> list[str]:
        if kind in ("long", "int"):
            return [f"{pad}_{kind}(out, {value})"]
        if kind not in ("string", "bytes"):
            raise NotImplementedError(f"Avro type {kind!r}")
        # A string is its UTF-8 bytes (str.encode raises for anything else); a length under 64
        # is one byte.
        raw = self._name()
        return [
            f"{pad}{raw} = {value}.encode()" if kind == "string" else f"{pad}{raw} = {value}",
            f"{pad}if len({raw}) < 64:",
            f"{pad}    out.append(len({raw}) << 1)",
            f"{pad}else:",
            f"{pad}    _long(out, len({raw}))",
            f"{pad}out += {raw}",
        ]
