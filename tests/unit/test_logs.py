"""connector/logs.py: the JSON lines, and `line`'s straight path giving the same line as logging."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from connector import logs

FIELDS = {"provider": "bandwidth-v2", "outcome": "published", "latency_ms": 1.25, "ids": ["a"]}


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """`configure`'s JSON logging, as `serve` runs it, into a string; logging restored after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logs._json_handler)
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    logs.configure()
    yield out
    # Not by monkeypatch: its own undo, after this, would put configure's handler back.
    root.handlers[:], root.level, logs._json_handler = saved


@contextmanager
def json_only() -> Iterator[None]:
    """The JSON handler alone on the root logger, as under `serve` (pytest adds its own for
    each test's call: with them there, every line goes through logging)."""
    root = logging.getLogger()
    saved = root.handlers[:]
    assert logs._json_handler is not None
    root.handlers[:] = [logs._json_handler]
    try:
        yield
    finally:
        root.handlers[:] = saved


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(text) for text in out.getvalue().splitlines()]


def test_the_straight_path_writes_the_line_logging_writes(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = logging.getLogger("connector.callbacks")
    records: list[logging.LogRecord] = []
    make = logger.makeRecord

    def counted(*args: Any, **kwargs: Any) -> logging.LogRecord:
        records.append(make(*args, **kwargs))
        return records[-1]

    monkeypatch.setattr(logger, "makeRecord", counted)
    with json_only():
        logs.line(logger, logging.INFO, "callback published", FIELDS)
        assert records == []  # no LogRecord: the straight path
        logger.log(logging.INFO, "callback published", extra=FIELDS)
    assert len(records) == 1
    straight, through_logging = _lines(stream)
    assert isinstance(straight.pop("time"), str) and isinstance(through_logging.pop("time"), str)
    assert list(straight.items()) == list(through_logging.items())
    assert straight == {"level": "info", "logger": "connector.callbacks",
                        "message": "callback published", **FIELDS}  # fmt: skip


def test_another_handler_gets_the_record_through_logging(stream: io.StringIO) -> None:
    """What a test's caplog or an operator's extra handler sees: the record, with its fields."""
    seen: list[logging.LogRecord] = []
    extra = logging.Handler()
    extra.emit = seen.append  # type: ignore[assignment,method-assign]
    logging.getLogger().addHandler(extra)
    try:
        logs.line(logging.getLogger("connector.callbacks"), logging.WARNING, "callback failed",
                  {"outcome": "failed"})  # fmt: skip
    finally:
        logging.getLogger().removeHandler(extra)
    assert [(r.getMessage(), getattr(r, "outcome", None)) for r in seen] == [
        ("callback failed", "failed")
    ]
    assert [line["message"] for line in _lines(stream)] == ["callback failed"]


def test_a_filter_on_the_logger_still_filters(stream: io.StringIO) -> None:
    logger = logging.getLogger("connector.callbacks")
    drop = logging.Filter("elsewhere")  # passes only records of the logger "elsewhere"
    logger.addFilter(drop)
    try:
        with json_only():
            logs.line(logger, logging.INFO, "callback published", FIELDS)
    finally:
        logger.removeFilter(drop)
    assert stream.getvalue() == ""


def test_below_the_level_nothing_is_written(stream: io.StringIO) -> None:
    with json_only():
        logs.line(logging.getLogger("connector.callbacks"), logging.DEBUG, "callback x", FIELDS)
    assert stream.getvalue() == ""
