"""The webhook endpoint API: create, read, change, delete, rotate the secret.

The secret is shown in the create's 201 and in a rotation's answer only; every other answer,
and every log line, holds the mask. Answers are validated against the served document.
"""

import logging

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from container_manager.models.webhooks import EVENTS, WebhookDelivery, WebhookEndpoint
from container_manager.rules.secrets import MASK
from container_manager.web.api import webhooks
from tests.support import submit
from tests.test_api import conforms
from tests.test_api_schedules import assert_hidden_like_unknown, call
from tests.test_owners_schedules import token, user_with

pytestmark = pytest.mark.django_db

WEBHOOKS = reverse("container_manager:api-webhooks")
SERVICE = "webhooks-service-token"
HOOK = "https://93.184.216.34/hook"
PERMISSIONS = tuple(f"{a}_webhookendpoint" for a in ("view", "add", "change", "delete"))


@pytest.fixture
def api(settings, recording):
    """alice and bob with every endpoint permission: ``{name: secret}`` with the service's."""
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [SERVICE]}
    users = {name: user_with(name, *PERMISSIONS) for name in ("alice", "bob")}
    return {"service": SERVICE, **{name: token(user) for name, user in users.items()}}


@pytest.fixture
def document(client):
    return client.get(reverse("container_manager:api-openapi")).json()


def url(webhook_id, rotate=False):
    name = "api-webhook-rotate" if rotate else "api-webhook"
    return reverse(f"container_manager:{name}", args=[webhook_id])


def create(client, secret, **fields):
    response = call(client, "post", WEBHOOKS, secret, {"url": HOOK, **fields})
    assert response.status_code == 201, response.content
    return response.json()


def test_the_secret_is_shown_at_create_and_rotation_only(client, api, document, caplog):
    caplog.set_level(logging.DEBUG)
    made = create(client, api["alice"], events=["job.failed"])
    assert conforms(document, "Webhook", made)
    stored = WebhookEndpoint.objects.get()
    assert made["secret"] == stored.secret and len(made["secret"]) == 64
    assert (made["events"], made["active"], stored.owner.username) == (
        ["job.failed"],
        True,
        "alice",
    )
    masked = {**made, "secret": MASK}
    read = call(client, "get", url(made["id"]), api["alice"])
    assert read.status_code == 200 and read.json() == masked
    listed = call(client, "get", WEBHOOKS, api["alice"]).json()
    assert listed == {"webhooks": [masked]}
    changed = call(client, "patch", url(made["id"]), api["alice"], {"active": False})
    assert changed.status_code == 200 and changed.json() == {**masked, "active": False}
    rotated = call(client, "post", url(made["id"], rotate=True), api["alice"])
    assert rotated.status_code == 200 and conforms(document, "Webhook", rotated.json())
    new = rotated.json()["secret"]
    assert new != made["secret"] and new == WebhookEndpoint.objects.get().secret
    assert call(client, "get", url(made["id"]), api["alice"]).json()["secret"] == MASK
    assert made["secret"] not in caplog.text and new not in caplog.text


def test_delete_removes_the_endpoint_and_its_deliveries(client, api, mock_host):
    made = create(client, api["alice"])
    job = submit(mock_host)
    hook = WebhookEndpoint.objects.get()
    WebhookDelivery.objects.create(endpoint=hook, job=job, event="job.failed", payload={})
    gone = call(client, "delete", url(made["id"]), api["alice"])
    assert (gone.status_code, gone.content) == (204, b"")
    assert not WebhookEndpoint.objects.exists() and not WebhookDelivery.objects.exists()
    assert call(client, "get", url(made["id"]), api["alice"]).status_code == 404


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"url": "http://127.0.0.1/hook"}, "url", "loopback"),
        ({"url": "http://10.1.2.3/hook"}, "url", "private"),
        ({"url": "ftp://93.184.216.34/hook"}, "url", "only http and https"),
        ({"url": ""}, "url", "blank"),
        ({"url": 5}, "url", "must be a string"),
        ({"url": "https://93.184.216.34/\x00"}, "url", "NUL"),
        ({"events": ["job.exploded"]}, "events", "unknown event"),
        ({"events": []}, "events", "at least one"),
        ({"events": "job.failed"}, "events", "list of event names"),
        ({"active": "yes"}, "active", "true or false"),
        ({"secret": "mine"}, "secret", "rotate"),
        ({"owner": 2}, "owner", "unknown field"),
    ],
)
@pytest.mark.parametrize("method", ["post", "patch"])
def test_bad_input_is_a_400_naming_the_field(client, api, document, method, body, field, words):
    made = create(client, api["alice"])
    path = WEBHOOKS if method == "post" else url(made["id"])
    response = call(client, method, path, api["alice"], {"url": HOOK, **body})
    assert response.status_code == 400, response.content
    assert conforms(document, "Error", response.json())
    [message] = response.json()["fields"][field]
    assert message.startswith(f"{field}: ") and words in message
    assert "mine" not in response.content.decode()
    assert call(client, "get", url(made["id"]), api["alice"]).json() == {**made, "secret": MASK}
    assert WebhookEndpoint.objects.count() == 1


def test_a_patch_never_undoes_a_rotation_made_meanwhile(client, api, monkeypatch):
    made = create(client, api["alice"])
    real = WebhookEndpoint.full_clean

    def rotated_meanwhile(endpoint, *args, **kwargs):
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret="rotated-meanwhile")
        return real(endpoint, *args, **kwargs)

    monkeypatch.setattr(WebhookEndpoint, "full_clean", rotated_meanwhile)
    body = {"events": ["job.completed"]}
    assert call(client, "patch", url(made["id"]), api["alice"], body).status_code == 200
    row = WebhookEndpoint.objects.get()
    assert (row.events, row.secret) == (["job.completed"], "rotated-meanwhile")


def test_of_two_rotations_at_once_one_is_a_409(client, api, document, monkeypatch):
    made = create(client, api["alice"])
    real = webhooks.new_secret

    def other_rotation_first():
        WebhookEndpoint.objects.filter(pk=made["id"]).update(secret="the-other-rotation")
        return real()

    monkeypatch.setattr(webhooks, "new_secret", other_rotation_first)
    response = call(client, "post", url(made["id"], rotate=True), api["alice"])
    assert response.status_code == 409 and conforms(document, "Error", response.json())
    assert "the-other-rotation" not in response.content.decode()
    assert WebhookEndpoint.objects.get().secret == "the-other-rotation"


def test_another_users_endpoint_answers_like_an_unknown_one(client, api):
    theirs = create(client, api["alice"])
    unknown = theirs["id"] + 1000
    requests = [
        ("get", url, None),
        ("patch", url, {"url": "https://93.184.216.35/steal"}),
        ("delete", url, None),
        ("post", lambda pk: url(pk, rotate=True), None),
    ]
    assert_hidden_like_unknown(client, api["bob"], requests, theirs["id"], unknown)
    assert call(client, "get", WEBHOOKS, api["bob"]).json() == {"webhooks": []}
    row = WebhookEndpoint.objects.get()
    assert (row.url, row.secret) == (HOOK, theirs["secret"])


def test_a_service_token_makes_an_operators_endpoint_and_sees_every_one(client, api):
    create(client, api["alice"])
    operators = create(client, SERVICE, url="https://93.184.216.35/ops")
    assert WebhookEndpoint.objects.get(pk=operators["id"]).owner is None
    assert operators["events"] == list(EVENTS)
    assert len(call(client, "get", WEBHOOKS, SERVICE).json()["webhooks"]) == 2
    assert call(client, "get", url(operators["id"]), api["alice"]).status_code == 404


@pytest.mark.parametrize(
    ("method", "rotate", "lacking"),
    [
        ("get", False, "view"),
        ("post", False, "add"),
        ("patch", False, "change"),
        ("delete", False, "delete"),
        ("post", True, "change"),
    ],
)
def test_each_action_needs_its_permission(client, api, document, method, rotate, lacking):
    from django.contrib.auth.models import Permission

    made = create(client, api["alice"])
    alice = WebhookEndpoint.objects.get().owner
    alice.user_permissions.remove(Permission.objects.get(codename=f"{lacking}_webhookendpoint"))
    path = WEBHOOKS if (method, rotate) == ("post", False) else url(made["id"], rotate)
    body = {"url": HOOK, "active": False} if method in ("post", "patch") else None
    response = call(client, method, path, api["alice"], body)
    assert response.status_code == 403 and conforms(document, "Error", response.json())
    assert response.json() == {"error": f"this token's user may not {lacking} webhook endpoints"}
    row = WebhookEndpoint.objects.get()
    assert (row.active, row.secret) == (True, made["secret"])


def test_listing_costs_the_same_statements_for_one_endpoint_or_many(client, api):
    def listing():
        with CaptureQueriesContext(connection) as captured:
            response = call(client, "get", WEBHOOKS, api["alice"])
        return len(response.json()["webhooks"]), len(captured.captured_queries)

    create(client, api["alice"])
    call(client, "get", WEBHOOKS, api["alice"])  # the token's use is recorded once a minute
    one = listing()
    for n in range(4):
        create(client, api["alice"], url=f"https://93.184.216.{n}/hook")
    many = listing()
    assert (one[0], many[0]) == (1, 5)
    assert many[1] == one[1]
