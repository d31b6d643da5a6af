"""What the API's endpoints for one stored object share: read, change, delete; the 404 of none.

Schedules and webhook endpoints have integer keys; an id that is no such key finds nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse

from container_manager.rules import contract
from container_manager.web.api.jobs import json_object
from container_manager.web.auth import ApiCaller
from container_manager.web.errors import error

#: The check of a free-text field: the submit contract's rule for text (storable, no NUL).
TEXT = contract.BY_NAME["command"]
#: Digits an id may have: every larger number is beyond a 64-bit key.
MAX_ID_DIGITS = 18


def row_id(text: str) -> int | None:
    """``text`` (from the URL) as an integer key, or None when it cannot be one.

    >>> row_id("42"), row_id("-1"), row_id("４２"), row_id("9" * 5000)
    (42, None, None, None)
    """
    if text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS:
        return int(text)
    return None


def not_found(what: str, text: str) -> JsonResponse:
    """The 404 of an id that names no ``what`` the caller may see: the same whichever it is."""
    return error(404, f"no {what} {text[:40]}")


def checked(obj: Model) -> None:
    """``obj.full_clean()``, each message of its errors starting with the field it names.

    Django's own messages ("This field cannot be blank.") do not say which field they are on.
    """
    try:
        obj.full_clean()
    except ValidationError as exc:
        raise ValidationError(
            {
                field: [m if m.startswith(f"{field}: ") else f"{field}: {m}" for m in messages]
                if field != NON_FIELD_ERRORS
                else messages
                for field, messages in exc.message_dict.items()
            }
        ) from None


#: The model permission each method of ``one_object`` needs.
ACTIONS = {"GET": "view", "PATCH": "change", "DELETE": "delete"}


def one_object(
    request: HttpRequest,
    caller: ApiCaller,
    rows: QuerySet,
    text: str,
    change: Callable[[Any, dict[str, Any]], None],
    show: Callable[[Any], dict[str, Any]],
    also_to_change: tuple[tuple[str, str], ...] = (),
) -> HttpResponse:
    """Answer GET (200), PATCH (200, after ``change``) or DELETE (204) of one of ``rows``.

    ``rows`` are those the caller may see, so any other id is the 404 of an unknown one. The
    caller needs the model permission of the method (``ApiCaller.require``) and, to change,
    each ``(action, model)`` of ``also_to_change``. ``show`` makes the JSON of the object.
    """
    action = ACTIONS[request.method or "GET"]
    caller.require(action, rows.model._meta.model_name)
    if action == "change":
        for permission in also_to_change:
            caller.require(*permission)
    found: Model | None = rows.filter(pk=row_id(text)).first()
    if found is None:
        return not_found(str(rows.model._meta.verbose_name), text)
    if action == "delete":
        found.delete()
        return HttpResponse(status=204)
    if action == "change":
        change(found, json_object(request.body))
    return JsonResponse(show(found))
