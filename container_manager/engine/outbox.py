"""The webhook outbox: a job event's delivery rows, written in the transaction of its move;
and the rows an operator asks for (a test event, a settled delivery sent again).

A crash cannot separate an event from its deliveries; the ``notify`` step sends the rows.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db.models import Exists

from container_manager import clock, dispatch
from container_manager.models.owners import viewers_of
from container_manager.models.webhooks import (
    DELIVERED,
    FAILED,
    PENDING,
    TEST_EVENT,
    WebhookDelivery,
    WebhookEndpoint,
)
from container_manager.rules import status as st


def annotations() -> dict[str, Exists]:
    """For the steps' job SELECT: whether any endpoint is active (else a move reads none)."""
    return {"webhook_endpoints_active": Exists(WebhookEndpoint.objects.filter(active=True))}


def event_of(status: str) -> str | None:
    """The webhook event a move to ``status`` makes, or None.

    >>> event_of("running"), event_of("timeout"), event_of("launching")
    ('job.started', 'job.timeout', None)
    """
    if status == st.RUNNING:
        return "job.started"
    return f"job.{status}" if status in st.TERMINAL else None


def may_write(job: Any, status: str) -> bool:
    """Whether a move of ``job`` to ``status`` may write delivery rows (``write`` may then read).

    >>> class Quiet: webhook_endpoints_active = False
    >>> may_write(Quiet(), "running"), may_write(object(), "running")
    (False, True)
    >>> may_write(object(), "launching")
    False
    """
    return event_of(status) is not None and getattr(job, "webhook_endpoints_active", True)


def write(job: Any, status: str) -> None:
    """Write a delivery row per active endpoint that wants the event of a move to ``status``.

    Only endpoints that may see ``job`` get one: an ownerless (operator's) endpoint, or one
    whose owner may view the job (``owners.viewers_of``, decided in the same SELECT).
    Called by ``transitions.move`` inside the move's transaction, with ``job``
    holding the values it wrote. One SELECT of the endpoints and one INSERT of
    every row (a row already made for the endpoint, job and event is kept);
    nothing for a move that makes no event or a job loaded with
    ``annotations()`` while no endpoint was active. A ``notify`` message per row
    is sent once the move commits, as a hint: the sweep sends the rows that are
    due whether or not it arrives.
    """
    if not may_write(job, status):
        return
    event = event_of(status)
    endpoints = WebhookEndpoint.objects.filter(viewers_of(job.created_by_id), active=True)
    endpoints = endpoints.values_list("pk", "events")
    wanted = [pk for pk, events in endpoints if event in events]
    if not wanted:
        return
    now = clock.now()
    rows = [_row(job, endpoint_id, event, now) for endpoint_id in wanted]
    WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    dispatch.send_many_on_commit([("notify", row.pk, 0) for row in rows])


def payload(job: Any, event: str, delivery_id: Any, now: datetime) -> dict[str, Any]:
    """The JSON body: the event, the delivery id and the job, as in ``send_job_webhook``."""
    duration = job.duration
    return {
        "event": event,
        "delivery_id": str(delivery_id),
        "job": {
            "id": str(job.pk),
            "name": job.name,
            "status": job.status,
            "docker_image": job.docker_image,
            "host": job.docker_host.name,
            "created_at": job.created_at.isoformat(),
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "completed_at": job.completed_at.isoformat() if job.completed_at else None,
            "exit_code": job.exit_code,
            "duration": duration.total_seconds() if duration else None,
        },
        "timestamp": now.isoformat(),
    }


def write_test(endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A test delivery to ``endpoint`` (about no job), due at once and sent by ``notify``.

    The admin request only writes the row; the ``notify`` step sends it through the guarded
    client and records the attempt, as it does every event's (the sweep resends it if the
    message is lost).
    """
    now = clock.now()
    delivery_id = uuid.uuid4()
    body = {"event": TEST_EVENT, "delivery_id": str(delivery_id), "job": None,
            "timestamp": now.isoformat()}  # fmt: skip
    row = WebhookDelivery.objects.create(
        id=delivery_id, endpoint=endpoint, job=None, event=TEST_EVENT, next_attempt_at=now,
        payload=body,
    )  # fmt: skip
    dispatch.send_on_commit("notify", row.pk)
    return row


def redeliver(delivery_id: Any) -> bool:
    """Send a settled (delivered or failed) delivery again: pending, due now, attempts afresh.

    A compare-and-set from the settled states: a delivery still pending is left to its own
    attempts (False). The body and the delivery id stay, so a receiver that keeps the ids
    it handled can tell a redelivery; ``history`` keeps every earlier attempt.
    """
    moved = WebhookDelivery.objects.filter(pk=delivery_id, state__in=(DELIVERED, FAILED)).update(
        state=PENDING, attempts=0, next_attempt_at=clock.now(), delivered_at=None
    )
    if moved:
        dispatch.send_on_commit("notify", delivery_id)
    return bool(moved)


# -- helpers --------------------------------------------------------------------


def _row(job: Any, endpoint_id: int, event: str, now: datetime) -> WebhookDelivery:
    """An unsaved delivery of ``event`` to the endpoint, due at once."""
    delivery_id = uuid.uuid4()
    return WebhookDelivery(
        id=delivery_id, endpoint_id=endpoint_id, job_id=job.pk, event=event,
        next_attempt_at=now, payload=payload(job, event, delivery_id, now),
    )  # fmt: skip
