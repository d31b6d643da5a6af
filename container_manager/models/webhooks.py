"""Webhook models: the endpoints that want job events, and one delivery row per event and endpoint.

A move writes its event's deliveries (``engine.outbox``); the ``notify`` step sends one and
records every attempt.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models
from django.db.models import Q

from container_manager.net.addresses import url_refusal

EVENTS = ("job.started", "job.completed", "job.failed", "job.timeout", "job.cancelled")
#: The event of a test delivery an operator sends from the admin: about no job, to one endpoint.
TEST_EVENT = "webhook.test"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
DELIVERY_STATES = [(PENDING, "Pending"), (DELIVERED, "Delivered"), (FAILED, "Failed")]


def new_secret() -> str:
    """A random signing secret for a new endpoint."""
    return secrets.token_hex(32)


def all_events() -> list[str]:
    """Every event: the default of a new endpoint."""
    return list(EVENTS)


def validate_events(value: Any) -> None:
    """A list of known event names.

    >>> validate_events(["job.failed"])
    >>> validate_events(["job.exploded"])
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: ["events: unknown event 'job.exploded'; known: ..."]
    """
    if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
        raise ValidationError("events: must be a list of event names")
    for event in value:
        if event not in EVENTS:
            raise ValidationError(f"events: unknown event {event!r}; known: {', '.join(EVENTS)}")


def validate_public_url(value: str) -> None:
    """A URL whose host may be reached: no address the policy refuses, in any spelling.

    See ``net.addresses.url_refusal``; ``WEBHOOK_ALLOWED_NETWORKS`` applies here too.

    >>> validate_public_url("https://93.184.216.34/hook")
    >>> validate_public_url("http://127.1/hook")
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: ['url: 127.1 (127.0.0.1) is a loopback address; ...']
    """
    refused = url_refusal(value)
    if refused:
        raise ValidationError(f"url: {refused}")


class WebhookEndpoint(models.Model):
    """
    A URL that receives job events as signed JSON POSTs.

    Each event makes one ``WebhookDelivery`` per active endpoint that wants it and may see the
    job: an endpoint with an ``owner`` gets the events of the jobs its owner may view
    (``models.owners``: their own, or every job with ``view_all_jobs`` or as a superuser; none
    once the owner is inactive). An endpoint without one is an operator's, made by trusted
    code, and gets every job's events.

    >>> WebhookEndpoint(url="ftp://example.com/hook").full_clean()
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: {'url': ['url: only http and https URLs are allowed']}
    """

    url = models.CharField(
        max_length=1000,
        validators=[
            URLValidator(
                schemes=["http", "https"], message="url: only http and https URLs are allowed"
            ),
            validate_public_url,
        ],
        help_text="Where events are POSTed (http or https); public addresses only, unless "
        "WEBHOOK_ALLOWED_NETWORKS allows a network.",
    )
    events = models.JSONField(
        default=all_events,
        validators=[validate_events],
        help_text=f"Events sent here, a list of: {', '.join(EVENTS)}.",
    )
    secret = models.CharField(
        max_length=200,
        default=new_secret,
        help_text="Signs each request (HMAC-SHA256); the receiver checks it with the same secret.",
    )
    active = models.BooleanField(default=True, help_text="Inactive endpoints get no deliveries.")
    # CASCADE, not SET_NULL: an endpoint left without its owner would receive every job's events.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="webhook_endpoints",
        help_text="Gets the events of the jobs this user may view; empty: every job's (operator).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["url"]
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """
    One event for one endpoint: its body, where it stands, and every attempt to send it.

    ``id`` is sent as the delivery id: a retry or a duplicate carries the same one, so the
    receiver can drop repeats. Made by the move of the event (``outbox``), in its transaction;
    written afterwards by the ``notify`` step only.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    job = models.ForeignKey(
        "container_manager.ContainerJob",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="webhook_deliveries",
        help_text="The job of the event; empty for a test delivery.",
    )
    event = models.CharField(max_length=30, choices=[(e, e) for e in (*EVENTS, TEST_EVENT)])
    payload = models.JSONField(help_text="The JSON body, fixed when the event happened.")
    state = models.CharField(max_length=10, choices=DELIVERY_STATES, default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="When the next attempt is due; empty once settled."
    )
    status_code = models.PositiveIntegerField(null=True, blank=True, help_text="Last answer.")
    error = models.TextField(blank=True, default="", help_text="Why the last attempt failed.")
    duration_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Last attempt.")
    history = models.JSONField(
        default=list, blank=True, help_text="Every attempt: time, status code, error, duration."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "job", "event"], name="cwebhook_one_per_event"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="cwebhook_due_idx",
                condition=Q(state=PENDING),
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.endpoint_id} ({self.state})"
