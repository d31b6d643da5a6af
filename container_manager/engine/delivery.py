"""The ``notify`` step: send one webhook delivery, signed, and record the attempt on its row.

Moves write the rows (``outbox``); sent through dispatch, retried with backoff, re-sent by sweeps.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.client import HTTPException
from typing import Any
from urllib.parse import urljoin, urlsplit

from container_manager import clock, dispatch
from container_manager.conf import setting
from container_manager.models.webhooks import DELIVERED, FAILED, PENDING, WebhookDelivery
from container_manager.net import addresses, outbound
from container_manager.rules.backoff import backoff

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-CM-Webhook-Signature"
TIMESTAMP_HEADER = "X-CM-Webhook-Timestamp"
DELIVERY_HEADER = "X-CM-Webhook-Delivery"
EVENT_HEADER = "X-CM-Webhook-Event"
#: Same-host 307/308 redirects followed per attempt; a redirect to another host never is.
MAX_REDIRECTS = 3
#: Seconds past an attempt's deadline before the sweep takes over an attempt that never ended.
LEASE_MARGIN = 30


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` HMAC-SHA256 of ``"<timestamp>.<body>"``.

    >>> sign("s3cret", "1700000000", b'{"event": "job.completed"}')
    'sha256=faa4f6b6dfb162f38576a604e300bfd8608f56d9f8dadb8067a49e4e5881b580'
    """
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, max_age: float = 300) -> bool:
    """For receivers: True when ``signature`` is right and ``timestamp`` is recent."""
    try:
        fresh = abs(time.time() - int(timestamp)) <= max_age
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


def notify(delivery_id: Any) -> str:
    """Send one delivery if it is pending and due; record the attempt and what comes next.

    The attempt is claimed (``attempts`` + 1, a lease) before it is sent, and only while
    ``WEBHOOK_MAX_ATTEMPTS`` are not used up: a delivery whose attempts were cut off by
    crashes, so never recorded, is marked failed here instead of being sent again.
    """
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None:
        return "missing"
    if delivery.state != PENDING:
        return "nothing-to-do"
    now = clock.now()
    if delivery.next_attempt_at and delivery.next_attempt_at > now + timedelta(seconds=1):
        return "not-due"
    limit = setting("WEBHOOK_MAX_ATTEMPTS")
    if delivery.attempts >= limit:
        return _give_up(delivery, limit)
    timeout = float(setting("WEBHOOK_TIMEOUT_SECONDS"))
    lease = now + timedelta(seconds=timeout + LEASE_MARGIN)
    attempt = delivery.attempts + 1
    claimed = WebhookDelivery.objects.filter(
        pk=delivery.pk, state=PENDING, attempts=delivery.attempts
    ).update(attempts=attempt, next_attempt_at=lease)
    if not claimed:
        return "taken"
    if not delivery.endpoint.active:
        result = Result(None, "endpoint is inactive", 0, retryable=False)
    else:
        result = post(delivery, timeout)
    return _record(delivery, attempt, result)


def due(now: datetime, limit: int) -> list[Any]:
    """Ids of pending deliveries whose attempt is due, most overdue first (for the sweep)."""
    rows = WebhookDelivery.objects.filter(state=PENDING, next_attempt_at__lte=now)
    return list(rows.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])


def retry_delay(attempt: int) -> float:
    """Seconds before the attempt after ``attempt``: exponential, capped, with jitter.

    >>> base = setting("WEBHOOK_BACKOFF_BASE")
    >>> 0.5 * base <= retry_delay(1) <= base
    True
    """
    return backoff(attempt, setting("WEBHOOK_BACKOFF_BASE"), setting("WEBHOOK_BACKOFF_MAX"))


@dataclass(frozen=True)
class Result:
    """What one attempt got: the status code (None without an answer), an error, the time."""

    status_code: int | None
    error: str
    duration_ms: int
    retryable: bool

    @property
    def ok(self) -> bool:
        """The receiver answered 2xx."""
        return self.status_code is not None and 200 <= self.status_code < 300


def post(delivery: WebhookDelivery, timeout: float) -> Result:
    """POST the delivery's body, signed, following only same-host 307/308 redirects.

    Every hop shares one deadline, ``timeout`` seconds from now: the attempt ends by then.
    Every hop goes through the guarded client: a host whose addresses are all refused
    (``addresses.RefusedAddress``) ends the delivery as failed, without a retry, since the
    same URL would be refused again.
    """
    body = json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "container-manager-webhooks",
        EVENT_HEADER: delivery.event,
        DELIVERY_HEADER: str(delivery.pk),
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign(delivery.endpoint.secret, stamp, body),
    }
    url = delivery.endpoint.url
    started = time.monotonic()
    deadline = outbound.Deadline(timeout)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            code, location, error = _post_once(url, body, headers, deadline)
        except addresses.RefusedAddress as exc:
            duration = int((time.monotonic() - started) * 1000)
            return Result(None, f"{type(exc).__name__}: {exc}", duration, retryable=False)
        if code in (307, 308) and location:
            target = urljoin(url, location)
            if not _same_host(url, target):
                return _result(started, code, f"redirect to another host not followed: {target}")
            url = target
            continue
        return _result(started, code, error)
    return _result(started, code, f"more than {MAX_REDIRECTS} redirects")


# -- helpers --------------------------------------------------------------------


def _post_once(
    url: str, body: bytes, headers: dict[str, str], deadline: outbound.Deadline
) -> tuple[int | None, str, str]:
    """(status code, Location, error) of one POST; the code is None when nothing answered."""
    try:
        answer = outbound.post(url, body, headers, deadline)
    except addresses.RefusedAddress:
        raise
    except (OSError, ValueError, HTTPException) as exc:  # timeouts, refused, bad URLs or answers
        return None, "", f"{type(exc).__name__}: {exc}"
    error = "" if 200 <= answer.status < 300 else f"HTTP {answer.status} {answer.reason}"
    return answer.status, answer.location, error


def _result(started: float, code: int | None, error: str) -> Result:
    duration = int((time.monotonic() - started) * 1000)
    if code is not None and 200 <= code < 300:
        return Result(code, "", duration, retryable=False)
    retryable = code is None or code == 429 or code >= 500
    if 300 <= (code or 0) < 400 and not error.startswith(("redirect", "more than")):
        error = f"HTTP {code}: redirect not followed"
    return Result(code, error, duration, retryable=retryable)


def _same_host(url: str, target: str) -> bool:
    a, b = urlsplit(url), urlsplit(target)
    return b.scheme in ("http", "https") and (a.scheme, a.netloc) == (b.scheme, b.netloc)


def _record(delivery: WebhookDelivery, attempt: int, result: Result) -> str:
    now = clock.now()
    entry = {
        "attempt": attempt,
        "at": now.isoformat(),
        "status_code": result.status_code,
        "error": result.error,
        "duration_ms": result.duration_ms,
    }
    fields: dict[str, Any] = {
        "status_code": result.status_code,
        "error": result.error,
        "duration_ms": result.duration_ms,
        "history": [*delivery.history, entry],
    }
    delay = None
    if result.ok:
        fields.update(state=DELIVERED, delivered_at=now, next_attempt_at=None)
    elif result.retryable and attempt < setting("WEBHOOK_MAX_ATTEMPTS"):
        delay = retry_delay(attempt)
        fields["next_attempt_at"] = now + timedelta(seconds=delay)
    else:
        fields.update(state=FAILED, next_attempt_at=None)
    updated = WebhookDelivery.objects.filter(
        pk=delivery.pk, state=PENDING, attempts=attempt
    ).update(**fields)
    if updated and delay is not None:
        dispatch.send_on_commit("notify", delivery.pk, delay=delay)
    if not result.ok:
        logger.warning("webhook %s attempt %s: %s", delivery.pk, attempt, result.error)
    return fields.get("state", "retrying") if updated else "taken"


def _give_up(delivery: WebhookDelivery, limit: int) -> str:
    """Mark failed, without sending, a delivery whose attempts are used up."""
    error = f"{delivery.attempts} attempts made, WEBHOOK_MAX_ATTEMPTS is {limit}: not sent again"
    updated = WebhookDelivery.objects.filter(
        pk=delivery.pk, state=PENDING, attempts=delivery.attempts
    ).update(state=FAILED, next_attempt_at=None, error=error)
    if not updated:
        return "taken"
    logger.warning("webhook %s: %s", delivery.pk, error)
    return FAILED
