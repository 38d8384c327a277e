"""Logging set-up: plain lines for people, one JSON object a line for machines."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_CONTEXT: ContextVar[tuple[tuple[str, object], ...]] = ContextVar("log_context", default=())


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Every log record made inside (in this thread, its tasks and the threads it starts with
    asyncio.to_thread) carries ``fields``, e.g. a batch's trace_id."""
    token = _CONTEXT.set(tuple({**dict(_CONTEXT.get()), **fields}.items()))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


_make_record = logging.getLogRecordFactory()


def _record_with_context(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Every record carries the current log_context, whichever handler writes it (the CLI's,
    or a host's such as Lambda's)."""
    record = _make_record(*args, **kwargs)
    for key, value in _CONTEXT.get():
        setattr(record, key, value)
    return record


logging.setLogRecordFactory(_record_with_context)


class JsonFormatter(logging.Formatter):
    """Render a record and every ``extra=`` field as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def configure_logging(
    log_format: Literal["text", "json"] = "text", level: int = logging.INFO
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def json_logging() -> bool:
    """Whether the process logs JSON lines (configure_logging("json"))."""
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)
