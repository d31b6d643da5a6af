"""The JSON error answers of the API and the endpoints, every one bounded in size.

One shape, ``{"error": "...", ...}``; a message is cut at ``MAX_MESSAGE_CHARS`` and says how much.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse

#: Longest message (characters) an error answer carries; the rest is cut and counted.
MAX_MESSAGE_CHARS = 1000
#: At most this many fields named by a 400, and this many messages per field.
MAX_FIELDS = 20
MAX_MESSAGES_PER_FIELD = 5
#: Longest field name shown (names come from the client's JSON keys).
MAX_FIELD_NAME_CHARS = 100


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, ending with "…" and the count of what was cut.

    >>> clip("abc"), clip("a" * 12, limit=4)
    ('abc', 'aaaa… (8 more characters)')
    """
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def error(status: int, message: str, **extra: Any) -> JsonResponse:
    """A JSON error answer ``{"error": message, **extra}`` with the message clipped."""
    return JsonResponse({"error": clip(message), **extra}, status=status)


def invalid(exc: ValidationError) -> JsonResponse:
    """The 400 of a ValidationError: ``fields`` names each field at fault, within the bounds.

    At most ``MAX_FIELDS`` fields with ``MAX_MESSAGES_PER_FIELD`` messages each;
    ``fields_omitted`` counts the fields left out.
    """
    errors = exc.message_dict if hasattr(exc, "error_dict") else {"body": exc.messages}
    shown = {
        clip(name, MAX_FIELD_NAME_CHARS): [clip(m) for m in messages[:MAX_MESSAGES_PER_FIELD]]
        + _more(len(messages) - MAX_MESSAGES_PER_FIELD, "messages")
        for name, messages in list(errors.items())[:MAX_FIELDS]
    }
    extra = {"fields_omitted": len(errors) - MAX_FIELDS} if len(errors) > MAX_FIELDS else {}
    return JsonResponse({"error": "invalid input", "fields": shown, **extra}, status=400)


def too_large() -> JsonResponse:
    """The 413 of a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``, naming the limit."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return error(
        413,
        f"the body is larger than this server accepts ({limit} bytes)",
        limit_bytes=limit,
    )


def oversized(request: HttpRequest) -> bool:
    """Whether ``request`` announces a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (unread).

    The same test Django makes when the body is first read (``RequestDataTooBig``).
    """
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return limit is not None and length > limit


def _more(count: int, what: str) -> list[str]:
    return [f"… {count} more {what}"] if count > 0 else []
