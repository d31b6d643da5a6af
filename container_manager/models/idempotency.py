"""Idempotency keys: a retried submission returns what the first one made, within a window.

``create_job(idempotency_key=...)`` and the API's ``Idempotency-Key`` header go through ``once``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction

from container_manager import clock
from container_manager.conf import setting
from container_manager.rules.idempotency import MAX_KEY_LENGTH, fingerprint

#: The scope of the keys of trusted callers: Python code and every service token share it.
SERVICE_SCOPE = "service"


class IdempotencyConflict(ValidationError):
    """The key was already used, within the window, for a different request (the API's 409)."""


class IdempotencyKey(models.Model):
    """A key a caller sent with a submission, what the request was, and what it made.

    Written in the transaction that makes the job (or schedule, or workflow), so both exist or
    neither.
    """

    scope = models.CharField(max_length=100, help_text="Whose key: 'user:<id>' or 'service'.")
    key = models.CharField(max_length=MAX_KEY_LENGTH)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the request.")
    job = models.ForeignKey(
        "container_manager.ContainerJob",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    schedule = models.ForeignKey(
        "container_manager.JobSchedule",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    workflow = models.ForeignKey(
        "container_manager.Workflow",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotency_scope_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"


def scope_of(user: Any) -> str:
    """The key scope of ``user``: their id, or ``SERVICE_SCOPE`` for a trusted caller (None).

    >>> scope_of(None)
    'service'
    """
    return SERVICE_SCOPE if user is None else f"user:{user.pk}"


def window() -> timedelta:
    """How long a key is kept: ``IDEMPOTENCY_WINDOW_SECONDS``; after it the key may be reused."""
    return timedelta(seconds=float(setting("IDEMPOTENCY_WINDOW_SECONDS")))


def once(
    scope: str, key: str, request: dict[str, Any], make: Callable[[], models.Model]
) -> tuple[models.Model, bool]:
    """What ``make()`` made the first time ``key`` came with ``request``, and whether it is new.

    The first call makes the object and records the key in one transaction; a later call in
    the window with the same request gets that object back (``False``), with another request
    an ``IdempotencyConflict``. Concurrent first calls make one object: the second waits on
    the key's unique index, rolls its own work back and answers with the first's.
    """
    digest = fingerprint(request)
    now = clock.now()
    found = _lookup(scope, key)
    if found is not None and found.created_at > now - window():
        return _replay(found, digest), False
    try:
        with transaction.atomic():
            if found is not None:  # an expired key is replaced on its reuse
                IdempotencyKey.objects.filter(pk=found.pk).delete()
            made = make()
            field = _FIELDS.get(made._meta.model_name, "job")
            IdempotencyKey.objects.create(
                scope=scope, key=key, fingerprint=digest, created_at=now, **{field: made}
            )
    except IntegrityError:
        winner = _lookup(scope, key)
        if winner is None:
            raise
        return _replay(winner, digest), False
    return made, True


def forget_expired(now: datetime, batch: int) -> int:
    """Delete up to ``batch`` keys past the window (the sweep's housekeeping); how many went."""
    expired = IdempotencyKey.objects.filter(created_at__lte=now - window()).order_by("created_at")
    deleted, _ = IdempotencyKey.objects.filter(
        pk__in=models.Subquery(expired.values("pk")[:batch])
    ).delete()
    return deleted


#: The key's column of each kind of object a submission makes, by model name (a job: ``job``).
_FIELDS = {"jobschedule": "schedule", "workflow": "workflow"}


def _lookup(scope: str, key: str) -> IdempotencyKey | None:
    rows = IdempotencyKey.objects.select_related(
        "job__docker_host", "schedule__docker_host", "workflow"
    )
    return rows.filter(scope=scope, key=key).first()


def _replay(found: IdempotencyKey, digest: str) -> models.Model:
    if found.fingerprint != digest:
        raise IdempotencyConflict(
            {
                "idempotency_key": "idempotency_key: this key was used for a different request "
                "within the window; send a new key for a new request."
            }
        )
    return found.job or found.schedule or found.workflow
