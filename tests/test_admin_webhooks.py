"""The admin's webhook actions: "send a test event" and "redeliver" write delivery rows; the
``notify`` step sends them through the guarded client, never the admin request itself."""

import json

import pytest
from django.urls import reverse

from container_manager.engine import delivery as delivery_step
from container_manager.engine import steps
from container_manager.models.webhooks import TEST_EVENT, WebhookDelivery, WebhookEndpoint
from container_manager.net import outbound
from tests import test_webhooks
from tests.test_admin import staff
from tests.test_webhooks import SECRET

pytestmark = pytest.mark.django_db
ENDPOINTS = reverse("admin:container_manager_webhookendpoint_changelist")
DELIVERIES = reverse("admin:container_manager_webhookdelivery_changelist")
# The webhook tests' receiver on 127.0.0.1 and their settings (recording backend, loopback allowed).
receiver, hooks = test_webhooks.receiver, test_webhooks.hooks


@pytest.fixture
def no_outbound_here(monkeypatch):
    """Fail any outbound POST made while the admin request runs."""

    def refuse(*args, **kwargs):
        raise AssertionError("the admin request sent a webhook itself")

    monkeypatch.setattr(outbound, "post", refuse)
    return monkeypatch.undo


def act(client, listing, action, *pks):
    return client.post(listing, {"action": action, "_selected_action": [str(pk) for pk in pks]})


def test_send_test_event_queues_a_delivery_that_notify_sends_signed(
    admin_client,
    hooks,
    receiver,
    no_outbound_here,
    django_capture_on_commit_callbacks,
):
    endpoint = WebhookEndpoint.objects.create(url=receiver.url, secret=SECRET, events=[])
    with django_capture_on_commit_callbacks(execute=True):
        answer = act(admin_client, ENDPOINTS, "send_test_event", endpoint.pk)
    assert answer.status_code == 302 and receiver.requests == []
    (row,) = WebhookDelivery.objects.filter(endpoint=endpoint)
    assert (row.event, row.job_id, row.state) == (TEST_EVENT, None, "pending")
    assert hooks.take() == [("notify", str(row.pk), 0)]
    no_outbound_here()
    assert steps.run_step("notify", row.pk) == "delivered"
    ((_, headers, body),) = receiver.requests
    stamp, signature = (
        headers[delivery_step.TIMESTAMP_HEADER],
        headers[delivery_step.SIGNATURE_HEADER],
    )
    assert delivery_step.verify(SECRET, stamp, body, signature)
    assert headers[delivery_step.EVENT_HEADER] == TEST_EVENT
    assert json.loads(body) == {**row.payload, "job": None, "event": TEST_EVENT}


def test_redeliver_sends_a_settled_delivery_again_with_its_id(
    admin_client,
    hooks,
    receiver,
    no_outbound_here,
    django_capture_on_commit_callbacks,
):
    endpoint = WebhookEndpoint.objects.create(url=receiver.url, secret=SECRET)
    with django_capture_on_commit_callbacks(execute=True):
        act(admin_client, ENDPOINTS, "send_test_event", endpoint.pk)
    row = WebhookDelivery.objects.get(endpoint=endpoint)
    receiver.replies.put((400, {}))  # a client error settles it as failed, no retry
    no_outbound_here()
    assert steps.run_step("notify", row.pk) == "failed"
    hooks.take()
    pending = WebhookDelivery.objects.create(
        endpoint=endpoint, event=TEST_EVENT, payload={"event": TEST_EVENT}
    )
    with django_capture_on_commit_callbacks(execute=True):
        answer = act(admin_client, DELIVERIES, "redeliver", row.pk, pending.pk)
    assert answer.status_code == 302 and len(receiver.requests) == 1  # nothing sent by the admin
    assert hooks.take() == [("notify", str(row.pk), 0)]  # the pending one is left to itself
    again = WebhookDelivery.objects.get(pk=row.pk)
    assert (again.state, again.attempts, len(again.history)) == ("pending", 0, 1)
    assert steps.run_step("notify", row.pk) == "delivered"
    ids = [headers[delivery_step.DELIVERY_HEADER] for _, headers, _ in receiver.requests]
    assert ids == [str(row.pk)] * 2
    done = WebhookDelivery.objects.get(pk=row.pk)
    assert [a["status_code"] for a in done.history] == [400, 200]


def test_the_actions_need_change_permission(client, hooks, receiver):
    endpoint = WebhookEndpoint.objects.create(url=receiver.url, secret=SECRET)
    staff(client, "viewer", "view_webhookendpoint", "view_webhookdelivery")
    act(client, ENDPOINTS, "send_test_event", endpoint.pk)
    assert not WebhookDelivery.objects.exists()
    row = WebhookDelivery.objects.create(
        endpoint=endpoint, event=TEST_EVENT, payload={}, state="failed"
    )
    act(client, DELIVERIES, "redeliver", row.pk)
    assert WebhookDelivery.objects.get(pk=row.pk).state == "failed" and hooks.take() == []
