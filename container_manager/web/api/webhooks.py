"""The JSON API of webhook endpoints: list, create, read, change, delete, rotate the secret.

Same tokens and error shape as the job API (``api.api_view``). A user's token needs the user's
``view``/``add``/``change``/``delete_webhookendpoint`` permission (``change`` to rotate) and
sees the endpoints the job rule lets it see (``models.owners``); any other id answers 404
like an unknown one. An endpoint made with a user's token is the user's and gets the events
of the jobs the user may view; one made with a service token has no owner and gets every
job's. The signing secret is made by the server and shown twice only: in the create's 201
and in the rotation's answer; everywhere else it is masked.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse

from container_manager.models.owners import owned_by
from container_manager.models.webhooks import WebhookEndpoint, new_secret
from container_manager.rules.secrets import MASK
from container_manager.web.api.jobs import api_view, json_object
from container_manager.web.api.rows import TEXT, checked, not_found, one_object, row_id
from container_manager.web.auth import ApiCaller
from container_manager.web.errors import error

#: Endpoints listed at most, by URL.
LIST_LIMIT = 100

#: What a create or a change may say, with the JSON type each one must have.
WRITABLE = {"url": str, "events": list, "active": bool}


@api_view("GET", "POST")
def webhooks_view(request: HttpRequest, caller: ApiCaller) -> JsonResponse:
    """GET: the endpoints the caller may see (by URL), secrets masked; POST: create one (201).

    The 201 holds the new endpoint's secret: the one answer to do so but a rotation's.
    """
    if request.method == "POST":
        caller.require("add", "webhookendpoint")
        values = _values(json_object(request.body))
        endpoint = WebhookEndpoint(owner=caller.user, **values)
        checked(endpoint)
        endpoint.save()
        return JsonResponse(webhook_json(endpoint, reveal=True), status=201)
    caller.require("view", "webhookendpoint")
    rows = _visible(caller).order_by("url", "pk")[:LIST_LIMIT]
    return JsonResponse({"webhooks": [webhook_json(e) for e in rows]})


@api_view("GET", "PATCH", "DELETE")
def webhook_view(request: HttpRequest, caller: ApiCaller, webhook_id: str) -> HttpResponse:
    """GET: one endpoint; PATCH: change the fields the body names (200); DELETE: 204.

    A PATCH is checked as a create is (the URL through the outbound address policy) and
    writes only the fields it names, so a rotation made meanwhile is never undone. Deleting
    an endpoint deletes its deliveries.
    """
    return one_object(request, caller, _visible(caller), webhook_id, _update, webhook_json)


@api_view("POST")
def webhook_rotate_view(request: HttpRequest, caller: ApiCaller, webhook_id: str) -> JsonResponse:
    """Give the endpoint a new signing secret; answer the endpoint with it, shown this once.

    A compare-and-set on the old secret: of two rotations at once one answers 409, so each
    secret handed out is the one stored.
    """
    caller.require("change", "webhookendpoint")
    endpoint = _visible(caller).filter(pk=row_id(webhook_id)).first()
    if endpoint is None:
        return not_found("webhook endpoint", webhook_id)
    secret = new_secret()
    rows = WebhookEndpoint.objects.filter(pk=endpoint.pk, secret=endpoint.secret)
    if not rows.update(secret=secret):
        return error(409, "secret: rotated by another request at the same time; ask again")
    endpoint.secret = secret
    return JsonResponse(webhook_json(endpoint, reveal=True))


def webhook_json(endpoint: WebhookEndpoint, reveal: bool = False) -> dict[str, Any]:
    """An endpoint as the API shows it; its secret masked unless ``reveal`` (create, rotate)."""
    return {
        "id": endpoint.pk,
        "url": endpoint.url,
        "events": endpoint.events,
        "active": endpoint.active,
        "secret": endpoint.secret if reveal else MASK,
        "created_at": endpoint.created_at.isoformat(),
    }


def _visible(caller: ApiCaller) -> Any:
    return owned_by(WebhookEndpoint.objects.all(), caller.user, "owner")


def _update(endpoint: WebhookEndpoint, payload: dict[str, Any]) -> None:
    """Set the fields ``payload`` names, check the whole endpoint, write only those fields."""
    values = _values(payload)
    for name, value in values.items():
        setattr(endpoint, name, value)
    checked(endpoint)
    endpoint.save(update_fields=list(values))


def _values(payload: dict[str, Any]) -> dict[str, Any]:
    """The model fields of a body; a 400 naming each field that is unknown or of a wrong type.

    The values themselves (a URL the outbound policy refuses, an unknown event) are the
    model's to check, at ``full_clean``.
    """
    errors = {}
    for name, value in payload.items():
        if name == "secret":
            errors[name] = ["secret: made by the server; POST to rotate/ for a new one"]
        elif name not in WRITABLE:
            errors[name] = [f"{name}: unknown field"]
        elif name == "events" and value == []:
            errors[name] = ["events: must name at least one event"]
        elif not isinstance(value, WRITABLE[name]):
            kind = {str: "a string", list: "a list of event names", bool: "true or false"}
            errors[name] = [f"{name}: must be {kind[WRITABLE[name]]}"]
        elif name == "url" and TEXT.error(value):
            errors[name] = [f"url: {TEXT.error(value)}"]
    if errors:
        raise ValidationError(errors)
    return payload
