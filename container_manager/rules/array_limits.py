"""An array's limits: ``max_parallel`` children at once and ``tolerated_failures`` before it fails.

Pure rules: what a submit may ask for, and how many failures an array of a size tolerates.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError

#: The text a percent of ``tolerated_failures`` ends with.
PERCENT = "%"


def check(
    array_size: int | None, max_parallel: Any, tolerated_failures: Any
) -> tuple[int | None, str]:
    """The limits of a submit as stored: ``max_parallel`` (or None) and ``tolerated_failures`` text.

    ``max_parallel`` is an integer from 1 to ``array_size``; ``tolerated_failures`` a count
    (an integer ≥ 0) or a percent (``"10%"``, 0 to 100). Both only on an array. A
    ValidationError names each field at fault and the rule it breaks.

    >>> check(10, 3, "25%"), check(None, None, None), check(4, None, 0)
    ((3, '25%'), (None, ''), (None, '0'))
    >>> check(4, 5, None)
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: {'max_parallel': ['max_parallel: must be from 1 to array_size (4).']}
    >>> check(None, 2, None)
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: {'max_parallel': ['max_parallel: only an array (array_size) has it.']}
    """  # noqa: E501
    errors = {}
    if max_parallel is not None:
        problem = max_parallel_error(max_parallel)
        if problem is None and array_size is not None and max_parallel > array_size:
            problem = f"must be from 1 to array_size ({array_size})."
        if problem is None and array_size is None:
            problem = "only an array (array_size) has it."
        if problem:
            errors["max_parallel"] = f"max_parallel: {problem}"
    text = ""
    if tolerated_failures is not None:
        problem = tolerance_error(tolerated_failures)
        if problem is None and array_size is None:
            problem = "only an array (array_size) has it."
        if problem:
            errors["tolerated_failures"] = f"tolerated_failures: {problem}"
        else:
            text = _stored(tolerated_failures)
    if errors:
        raise ValidationError(errors)
    return max_parallel, text


def max_parallel_error(value: Any) -> str | None:
    """What is wrong with a ``max_parallel`` alone (not an integer ≥ 1), or None.

    >>> max_parallel_error(0), max_parallel_error(True), max_parallel_error(2)
    ('must be an integer from 1 to array_size.', 'must be an integer from 1 to array_size.', None)
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return "must be an integer from 1 to array_size."
    return None


def tolerance_error(value: Any) -> str | None:
    """What is wrong with a ``tolerated_failures`` value, or None.

    >>> [tolerance_error(v) for v in (5, "10%", "2.5%", 0)]
    [None, None, None, None]
    >>> tolerance_error(-1)
    'must be a count (an integer from 0) or a percent from 0% to 100% ("10%").'
    >>> {tolerance_error(v) for v in ("101%", "ten", 1.5, "-1%")} == {tolerance_error(-1)}
    True
    """
    rule = 'must be a count (an integer from 0) or a percent from 0% to 100% ("10%").'
    if isinstance(value, bool):
        return rule
    if isinstance(value, int):
        return None if value >= 0 else rule
    if not isinstance(value, str) or not value.endswith(PERCENT) or len(value) > 8:
        return rule
    try:
        percent = Decimal(value[:-1])
    except InvalidOperation:
        return rule
    return None if percent.is_finite() and 0 <= percent <= 100 else rule


def allowed_failures(stored: str, array_size: int) -> int | None:
    """How many children of an array of ``array_size`` may fail or time out; None: no limit set.

    A percent of the size, rounded down (10% of 15 is 1: the second failure is one too many).

    >>> allowed_failures("", 10), allowed_failures("3", 10), allowed_failures("10%", 15)
    (None, 3, 1)
    >>> allowed_failures("2.5%", 200), allowed_failures("100%", 7)
    (5, 7)
    """
    if not stored:
        return None
    if stored.endswith(PERCENT):
        return int(Decimal(stored[:-1]) * array_size / 100)
    return int(stored)


def shown(stored: str) -> int | str | None:
    """A stored ``tolerated_failures`` as the API shows it: a count, a percent text, or None.

    >>> shown(""), shown("4"), shown("10%")
    (None, 4, '10%')
    """
    if not stored:
        return None
    return stored if stored.endswith(PERCENT) else int(stored)


def _stored(value: int | str) -> str:
    """A valid ``tolerated_failures`` as its column keeps it: ``"5"`` or ``"10%"``."""
    if isinstance(value, int):
        return str(value)
    return f"{Decimal(value[:-1]).normalize():f}{PERCENT}"
