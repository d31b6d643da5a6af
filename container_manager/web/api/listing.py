"""The job list of ``GET api/jobs/``: its filters, and pages by an opaque cursor.

Newest first, on (``created_at``, ``id``) descending, which ``cjob_list_idx`` serves: a page
after a cursor starts where the last one stopped, however many jobs came since (keyset).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Any

from django.core import signing
from django.core.exceptions import ValidationError
from django.http import QueryDict

from container_manager.models.labels import with_label
from container_manager.rules import status as st
from container_manager.rules.contract import parse_time, text_error
from container_manager.rules.labels import parse_selector

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
#: The query parameters of the list, each at most once but ``label``.
PARAMETERS = (
    "limit", "cursor", "status", "name", "host", "created_after", "created_before", "label",
)  # fmt: skip

_SALT = "container_manager.api.jobs.cursor"


def page(jobs: Any, query: QueryDict) -> tuple[list[Any], str | None]:
    """One page of the ``jobs`` queryset as ``query`` asks, and the cursor of the next or None.

    Raises a ``ValidationError`` naming the parameter at fault (400): unknown, not text a
    database can compare (a NUL character, a lone surrogate), or not a valid value. At most three
    statements whatever the page's size: the page with its hosts (label filters are
    subqueries of it), and the two queries ``jobs`` prefetches.
    """
    errors = {
        name: [f"{name}: unknown parameter; known: {', '.join(PARAMETERS)}."]
        for name in query
        if name not in PARAMETERS
    }
    for name, values in query.lists():
        problem = next(filter(None, map(text_error, values)), None)
        if problem and name not in errors:
            errors[name] = [f"{name}: {problem}"]
    if errors:
        raise ValidationError(errors)
    limit = _limit(query.get("limit"))
    jobs = filtered(jobs, query)
    cursor = query.get("cursor")
    if cursor:
        created_at, pk = _decode(cursor)
        jobs = jobs.filter(created_at__lte=created_at).exclude(created_at=created_at, pk__gte=pk)
    rows = list(jobs.order_by("-created_at", "-id")[: limit + 1])
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, _encode(rows[-1].created_at, rows[-1].pk)


def filtered(jobs: Any, query: QueryDict) -> Any:
    """``jobs`` narrowed by the filters of ``query``; every label given must match."""
    status = query.get("status")
    if status:
        if status not in dict(st.STATUS_CHOICES):
            known = ", ".join(dict(st.STATUS_CHOICES))
            raise ValidationError({"status": [f"status: must be one of {known}."]})
        jobs = jobs.filter(status=status)
    if query.get("name"):
        jobs = jobs.filter(name=query["name"])
    if query.get("host"):
        jobs = jobs.filter(docker_host__name=query["host"])
    for name, lookup in (("created_after", "gt"), ("created_before", "lt")):
        if query.get(name):
            jobs = jobs.filter(**{f"created_at__{lookup}": _time(name, query[name])})
    for text in query.getlist("label"):
        jobs = with_label(jobs, *_selector(text))
    return jobs


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise ValidationError({"limit": [f"limit: must be an integer from 1 to {MAX_LIMIT}."]})
    return int(text)


def _time(name: str, text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise ValidationError({name: [f"{name}: {exc} (a + in a URL is %2B)"]}) from None


def _selector(text: str) -> tuple[str, str]:
    try:
        return parse_selector(text)
    except ValueError as exc:
        raise ValidationError({"label": [f"label: {exc}"]}) from None


def _encode(created_at: datetime, pk: uuid.UUID) -> str:
    """The opaque cursor: the last row's key, signed so a changed cursor is refused."""
    signed = signing.dumps([created_at.isoformat(), str(pk)], salt=_SALT, compress=False)
    return base64.urlsafe_b64encode(signed.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        signed = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, pk = signing.loads(signed, salt=_SALT)
        return datetime.fromisoformat(created_at), uuid.UUID(pk)
    except (binascii.Error, UnicodeDecodeError, signing.BadSignature, ValueError, TypeError):
        raise ValidationError(
            {"cursor": ["cursor: not a cursor this API gave; start again without it."]}
        ) from None
