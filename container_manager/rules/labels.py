"""Job labels: the rules a label's key and value follow (Kubernetes' own), and ``key=value`` text.

``rules.contract`` checks a submit's ``labels`` with ``labels_error``; the job list reads filters.
"""

from __future__ import annotations

import re
from typing import Any

#: The most labels one job carries (below ECS's 50 tags, which also holds the app's own).
MAX_LABELS = 32
#: The longest key: a DNS-subdomain prefix (253), a slash, a name (63).
MAX_KEY_LENGTH = 317
MAX_VALUE_LENGTH = 63
#: Keys the app sets itself on every execution (``executors.base.labels``): not a user's.
RESERVED_PREFIX = "container_manager."

_NAME = re.compile(r"[A-Za-z0-9]([-_.A-Za-z0-9]{0,61}[A-Za-z0-9])?")
_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def labels_error(labels: Any) -> str | None:
    """What is wrong with a job's ``labels`` (an object of key to value), or None.

    >>> labels_error({"team": "data", "app.example.com/tier": "batch"}) is None
    True
    >>> labels_error({"team": "data science"})
    "the value of 'team' must be 63 letters, digits, '-', '_' or '.' at most, starting and ending with a letter or digit."
    """  # noqa: E501
    if not isinstance(labels, dict):
        return "must be an object mapping keys to string values."
    if len(labels) > MAX_LABELS:
        return f"at most {MAX_LABELS} labels."
    for key, value in labels.items():
        if not isinstance(key, str):
            return f"the key {key!r} must be a string."
        problem = key_error(key)
        if problem:
            return problem
        if not isinstance(value, str):
            return f"the value of {key!r} must be a string."
        if value and not _NAME.fullmatch(value):
            return (
                f"the value of {key!r} must be {MAX_VALUE_LENGTH} letters, digits, '-', '_' or '.'"
                " at most, starting and ending with a letter or digit."
            )
    return None


def key_error(key: str) -> str | None:
    """What is wrong with a label key (``[prefix/]name``), or None.

    >>> key_error("container_manager.job_id")
    "key 'container_manager.job_id': keys starting with container_manager. are the app's own."
    """
    shown = repr(key[:80])
    if not key or len(key) > MAX_KEY_LENGTH:
        return f"key {shown}: must be 1 to {MAX_KEY_LENGTH} characters."
    prefix, _, name = key.rpartition("/")
    if "/" in key and not (len(prefix) <= 253 and _PREFIX.fullmatch(prefix)):
        return f"key {shown}: the prefix before '/' must be a DNS subdomain (a.example.com)."
    if not _NAME.fullmatch(name):
        return (
            f"key {shown}: the name must be 63 letters, digits, '-', '_' or '.' at most, "
            "starting and ending with a letter or digit."
        )
    if key.startswith(RESERVED_PREFIX):
        return f"key {shown}: keys starting with {RESERVED_PREFIX} are the app's own."
    return None


def parse_selector(text: str) -> tuple[str, str]:
    """A ``key=value`` filter as ``(key, value)``; ``ValueError`` saying why when it is not one.

    >>> parse_selector("team=data")
    ('team', 'data')
    >>> parse_selector("team")
    Traceback (most recent call last):
    ...
    ValueError: 'team' is not key=value.
    """
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"{text[:80]!r} is not key=value.")
    problem = labels_error({key: value})
    if problem:
        raise ValueError(problem)
    return key, value
