"""Logging: human-readable lines by default, JSON lines for log pipelines.

Context such as the account being polled and the API's trace id is attached once, with
``log_context(account=...)`` around a unit of work or ``extra={"trace_id": ...}`` on a
call, and every line logged inside carries it: ``key=value`` at the end of a text line,
top-level fields in JSON.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

CONTEXT_FIELDS = ("account", "trace_id", "channel", "replica")
_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "log_context", default=None)
_process: dict[str, str] = {}


def set_process_fields(**fields: str) -> None:
    """Attach fields to every record of this process (the daemon's replica identity)."""
    _process.update(fields)


@contextmanager
def log_context(**fields: str) -> Iterator[None]:
    """Attach fields to every record logged in this task until the block ends."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in {**_process, **(_context.get() or {})}.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def _fields(record: logging.LogRecord) -> dict[str, str]:
    return {k: str(getattr(record, k)) for k in CONTEXT_FIELDS if getattr(record, k, None)}


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items()
                         if f"{k}=" not in record.getMessage())
        if not extra:
            return line
        head, sep, tail = line.partition("\n")  # keep a traceback below the fields
        return f"{head} {extra}{sep}{tail}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("apscheduler", "httpx", "httpcore", "uvicorn.error", "alembic.runtime"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
