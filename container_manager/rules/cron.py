"""Cron text and IANA time zones: validation and the times a schedule falls on, via cronsim.

Times are computed in the schedule's zone; daylight-saving gaps and repeats follow Debian cron.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from django.core.exceptions import ValidationError

#: The ``@`` names accepted besides five fields, and the five fields each one means.
ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
}


def expand(cron: str) -> str:
    """The five fields ``cron`` stands for; ``ValidationError`` on ``cron`` otherwise.

    >>> expand("@daily")
    '0 0 * * *'
    >>> expand("*/15 9-17 * * MON-FRI")
    '*/15 9-17 * * MON-FRI'
    >>> expand("61 * * * *")
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: {'cron': ["cron: '61 * * * *' is not valid: Bad m...
    """
    text = " ".join(str(cron or "").split())
    fields = ALIASES.get(text.lower(), text)
    if len(fields.split()) != 5:
        names = ", ".join(ALIASES)
        raise ValidationError(
            {"cron": f"cron: {text!r} must have five fields (minute hour day month weekday) "
                     f"or be one of {names}"}
        )  # fmt: skip
    try:
        CronSim(fields, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ValidationError({"cron": f"cron: {text!r} is not valid: {exc}"}) from None
    return fields


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ``ValidationError`` on ``timezone`` if there is none.

    >>> zone("Europe/Berlin").key
    'Europe/Berlin'
    >>> zone("Mars/Olympus")
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: {'timezone': ["timezone: 'Mars/Olympus' is not an...
    """
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            {"timezone": f"timezone: {name!r} is not an IANA time zone name"}
        ) from None


def following(cron: str, tz: str, after: datetime, count: int = 1) -> list[datetime]:
    """The first ``count`` times strictly after ``after`` (aware), in the zone ``tz``.

    >>> from datetime import timezone as utc
    >>> start = datetime(2026, 3, 28, 12, tzinfo=utc.utc)
    >>> [t.isoformat() for t in following("30 2 * * *", "Europe/Berlin", start, 2)]
    ['2026-03-29T03:00:00+02:00', '2026-03-30T02:30:00+02:00']
    """
    times = _iterate(cron, tz, after, reverse=False)
    return [t for _, t in zip(range(count), times, strict=False)]


def due_between(cron: str, tz: str, start: datetime, end: datetime) -> Iterator[datetime]:
    """The times in ``[start, end]``, newest first, without walking the gap from ``start``."""
    # Reverse iteration starts strictly before its origin: one second past ``end`` includes it.
    origin = end.replace(microsecond=0) + timedelta(seconds=1)
    for moment in _iterate(cron, tz, origin, reverse=True):
        if moment < start:
            return
        yield moment


def _iterate(cron: str, tz: str, origin: datetime, reverse: bool) -> Iterator[datetime]:
    local = origin.astimezone(zone(tz))
    try:
        yield from CronSim(expand(cron), local, reverse=reverse)
    except StopIteration:
        return
