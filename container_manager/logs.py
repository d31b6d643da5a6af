"""Structured logging: every record made during a step carries ``job_id`` and ``step``.

``StepContextFilter`` adds them (as logging ``extra`` would); ``JsonFormatter`` writes one JSON
object per line for CloudWatch and Cloud Logging.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("cm_log_context")
#: Attributes every ``LogRecord`` has; anything else on a record was given as ``extra``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


@contextmanager
def step_context(step: str, job_id: Any) -> Iterator[None]:
    """Within the block, log records carry ``step`` and ``job_id``."""
    token = _context.set({"step": step, "job_id": str(job_id)})
    try:
        yield
    finally:
        _context.reset(token)


class StepContextFilter(logging.Filter):
    """Put the current step's ``job_id`` and ``step`` on a record that has none of its own.

    >>> record = logging.makeLogRecord({"msg": "hi"})
    >>> with step_context("launch", "42"):
    ...     _ = StepContextFilter().filter(record)
    >>> record.job_id, record.step
    ('42', 'launch')
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get({}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, exception, and every extra.

    >>> record = logging.makeLogRecord({"msg": "launched %s", "args": ("x",), "job_id": "42"})
    >>> line = json.loads(JsonFormatter().format(record))
    >>> line["message"], line["job_id"]
    ('launched x', '42')
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            # Cloud Logging reads "severity"; CloudWatch filters on any key.
            "severity": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in entry:
                entry[name] = value
        return json.dumps(entry, default=str)
