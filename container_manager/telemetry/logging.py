"""Structured logging: a step's records carry ``job_id`` and ``step``, a failed request its job.

``StepContextFilter`` and ``JobIdFilter`` add them; ``JsonFormatter`` writes one JSON object per
line for CloudWatch and Cloud Logging. ``functions/settings.py``'s ``LOGGING`` names all three.
"""

from __future__ import annotations

import contextvars
import json
import logging
import uuid
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


class JobIdFilter(logging.Filter):
    """Set ``record.job_id`` from the request a record is about, ``-`` when it names no job.

    The id comes from the URL (``.../jobs/<job_id>/``) or from a step push body
    ``{"job_id": ...}``. Every record passes; only the attribute is added.

    >>> record = logging.makeLogRecord({"msg": "boom"})
    >>> JobIdFilter().filter(record), record.job_id
    (True, '-')
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.job_id = job_id_of(getattr(record, "request", None)) or "-"
        return True


def job_id_of(request: Any) -> str | None:
    """The job id a request names in its URL or step body, or None."""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.kwargs.get("job_id"):
        return str(match.kwargs["job_id"])[:40]
    try:
        payload = json.loads(request.body or b"null")
        return str(uuid.UUID(str(payload["job_id"])))
    except Exception:
        # Whatever the body is, logging the failure must not fail in turn.
        return None
