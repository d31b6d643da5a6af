"""Quotas per caller: requests per minute (counted in the database), rows per request, active jobs.

The JSON API applies them to users' tokens (``web.api``); ``create_job(limited=True)`` on request.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from django.db import connection, models

from container_manager.conf import setting

#: The ``Retry-After`` (seconds) of a refusal that waits on other work: jobs still active.
ACTIVE_JOBS_RETRY_AFTER = 30


class QuotaExceeded(Exception):
    """A caller went over ``quota`` (its ``limit``); ``retry_after`` seconds is worth a wait."""

    def __init__(self, quota: str, limit: int, retry_after: int, detail: str):
        super().__init__(f"quota {quota} ({limit}) exceeded: {detail}")
        self.quota = quota
        self.limit = limit
        self.retry_after = retry_after
        self.detail = detail


class RequestWindow(models.Model):
    """How many API requests one caller made in one minute; old minutes are deleted by the sweep.

    One row per caller and minute, bumped by one upsert per request, so the count holds
    across every process and serverless instance that shares the database.
    """

    scope = models.CharField(max_length=100, help_text="Who: 'user:<id>' or a service token.")
    minute = models.BigIntegerField(help_text="Minutes since the Unix epoch.")
    hits = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "minute"], name="requestwindow_unique")
        ]

    def __str__(self) -> str:
        return f"{self.scope} @{self.minute}: {self.hits}"


def count_request(scope: str, now: datetime) -> None:
    """Count one request of ``scope`` in the minute of ``now``; QuotaExceeded past the limit.

    One statement (an upsert returning the new count: ``INSERT … ON CONFLICT DO UPDATE …
    RETURNING``, as PostgreSQL and SQLite 3.35+ speak it). The refusal's ``Retry-After`` is
    the rest of the minute. A limit of None counts nothing.
    """
    limit = setting("QUOTA_REQUESTS_PER_MINUTE")
    if limit is None:
        return
    seconds = now.timestamp()
    minute = int(seconds // 60)
    table, scope_, minute_, hits_ = map(
        connection.ops.quote_name, (RequestWindow._meta.db_table, "scope", "minute", "hits")
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({scope_}, {minute_}, {hits_}) VALUES (%s, %s, 1) "  # noqa: S608
            f"ON CONFLICT ({scope_}, {minute_}) DO UPDATE SET {hits_} = {table}.{hits_} + 1 "
            f"RETURNING {hits_}",
            [scope, minute],
        )
        (hits,) = cursor.fetchone()
    if hits > limit:
        rest = max(1, math.ceil((minute + 1) * 60 - seconds))
        raise QuotaExceeded("requests_per_minute", limit, rest, f"{hits} requests in this minute")


def check_submission(active: Any, rows: int) -> None:
    """Refuse a submission of ``rows`` rows over the per-request or the active-jobs quota.

    ``active`` is the submitter's live jobs (a queryset; None for a caller with no user,
    to whom only the per-request quota applies). One COUNT when it is given.
    """
    per_request = setting("QUOTA_ROWS_PER_REQUEST")
    if per_request is not None and rows > per_request:
        raise QuotaExceeded(
            "rows_per_request",
            per_request,
            ACTIVE_JOBS_RETRY_AFTER,
            f"this submission makes {rows} jobs (an array of n makes n + 1)",
        )
    most = setting("QUOTA_ACTIVE_JOBS")
    if active is None or most is None:
        return
    count = active.count()
    if count + rows > most:
        raise QuotaExceeded(
            "active_jobs",
            most,
            ACTIVE_JOBS_RETRY_AFTER,
            f"{count} jobs pending or running, {rows} more asked",
        )


def rows_of(array_size: Any) -> int:
    """How many job rows a submission makes: 1, or an array's size plus its parent.

    >>> rows_of(None), rows_of(10)
    (1, 11)
    """
    if isinstance(array_size, int) and not isinstance(array_size, bool) and array_size > 0:
        return array_size + 1
    return 1


def forget_old_windows(now: datetime, batch: int) -> int:
    """Delete up to ``batch`` counts of past minutes (the sweep's housekeeping); how many went."""
    current = int(now.timestamp() // 60)
    old = RequestWindow.objects.filter(minute__lt=current).order_by("minute")
    deleted, _ = RequestWindow.objects.filter(
        pk__in=models.Subquery(old.values("pk")[:batch])
    ).delete()
    return deleted
