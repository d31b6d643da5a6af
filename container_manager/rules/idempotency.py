"""Idempotency keys: the rule a key obeys and the fingerprint that tells two requests apart.

Pure: ``models.idempotency`` stores the keys, ``create_job`` and the API read them through it.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import json
import uuid
from typing import Any

from django.core.exceptions import ValidationError

#: Longest key accepted (characters); a key is 1 to this many printable ASCII characters.
MAX_KEY_LENGTH = 255


def check_key(key: Any, field: str = "idempotency_key") -> str:
    """``key`` if it is 1 to 255 printable ASCII characters; a ValidationError on ``field``.

    >>> check_key("order-42/retry")
    'order-42/retry'
    >>> check_key("é", field="Idempotency-Key")
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: {'Idempotency-Key': ['Idempotency-Key: ...']}
    """
    if (
        not isinstance(key, str)
        or not 1 <= len(key) <= MAX_KEY_LENGTH
        or not all(" " <= char <= "~" for char in key)
    ):
        raise ValidationError(
            {field: f"{field}: must be 1 to {MAX_KEY_LENGTH} printable ASCII characters."}
        )
    return key


def fingerprint(request: Any) -> str:
    """The SHA-256 of ``request`` as canonical JSON (sorted keys, no spaces).

    Saved rows count as their primary key, dates as ISO 8601, so the same call made twice
    has the same fingerprint and any change to it another one.

    >>> fingerprint({"b": 1, "a": [1.5, None]}) == fingerprint({"a": [1.5, None], "b": 1})
    True
    >>> fingerprint({"a": 1}) == fingerprint({"a": "1"})
    False
    """
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), default=_canonical)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
    if hasattr(value, "_meta") and hasattr(value, "pk"):
        return {"model": value._meta.label_lower, "pk": str(value.pk)}
    raise TypeError(f"cannot fingerprint a {type(value).__name__}")
