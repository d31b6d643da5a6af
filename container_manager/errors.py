"""Logging support that makes a failed request findable: the job id it was about, on the record.

``JobIdFilter`` is used by the ``LOGGING`` of ``functions/settings.py`` on ``django.request``.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any


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
