"""Structured JSON logs: one object per line, extra fields from `extra={...}` included."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TextIO

import orjson

# Attributes every LogRecord has; anything else came from `extra` and belongs in the line.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _json_line(
    created: float, level: str, logger: str, message: str, fields: Iterable[tuple[str, object]]
) -> str:
    line: dict[str, object] = {
        "time": datetime.fromtimestamp(created, UTC),
        "level": level,
        "logger": logger,
        "message": message,
    }
    line.update(fields)
    return orjson.dumps(line, option=orjson.OPT_UTC_Z, default=str).decode()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = [(k, v) for k, v in record.__dict__.items() if k not in _STANDARD]
        if record.exc_info:
            fields.append(("exception", self.formatException(record.exc_info)))
        return _json_line(
            record.created, record.levelname.lower(), record.name, record.getMessage(), fields
        )


# The handler `configure` installed for JSON lines, while it is the only one (see `line`).
_json_handler: logging.StreamHandler[TextIO] | None = None


def line(logger: logging.Logger, level: int, message: str, fields: Mapping[str, object]) -> None:
    """`logger.log(level, message, extra=fields)`, written straight to the stream when the
    JSON handler `configure` installed is the only place the line can go (no other handler,
    no filter: what `serve` runs with). The per-callback line took 11 % of a JSON callback's
    CPU at saturation through logging's record, handler walk and formatter (perf,
    bench/results/2026-12-03-log-line-s8.md); anything else (a test's caplog, a handler
    added) gets the record through logging as before."""
    if not logger.isEnabledFor(level):
        return
    handler = _json_handler
    if handler is None or not _only_to(logger, handler, level):
        logger.log(level, message, extra=fields)
        return
    text = _json_line(
        time.time(), logging.getLevelName(level).lower(), logger.name, message, fields.items()
    )
    handler.acquire()
    try:
        handler.stream.write(text + handler.terminator)
        handler.stream.flush()
    except Exception:  # what StreamHandler.emit would report
        handler.handleError(logger.makeRecord(logger.name, level, "", 0, message, (), None))
    finally:
        handler.release()


def _only_to(logger: logging.Logger, handler: logging.Handler, level: int) -> bool:
    """Whether a record of `logger` at `level` would reach `handler`, once, unfiltered, and
    nothing else (logging's own walk: the logger's filters, then every handler up the chain
    until a logger that does not propagate)."""
    if logger.filters or handler.filters or level < handler.level:
        return False
    reached = 0
    current: logging.Logger | None = logger
    while current is not None:
        for other in current.handlers:
            if other is not handler:
                return False
            reached += 1
        current = current.parent if current.propagate else None
    return reached == 1


def configure(level: str = "INFO", json: bool = True) -> None:
    global _json_handler
    # What no line of ours shows: where in the source it was logged from (a frame walk per
    # record), the thread and the process. Off, as the logging HOWTO's "Optimization" advises:
    # the per-callback line costs 12 us instead of 16.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)
    _json_handler = handler if json else None
    # The registry client logs every HTTP request at INFO: noise next to our own lines.
    for chatty in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
