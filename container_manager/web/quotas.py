"""Which API callers the quotas hold, and their 429 answer with ``Retry-After``.

The counts and limits are ``models.limits``'; a service token is exempt unless
``QUOTA_SERVICE_TOKENS`` says otherwise.
"""

from __future__ import annotations

from django.http import JsonResponse

from container_manager import clock
from container_manager.conf import setting
from container_manager.models import limits
from container_manager.models.idempotency import scope_of
from container_manager.web.auth import ApiCaller
from container_manager.web.errors import error


def applies(caller: ApiCaller) -> bool:
    """Whether the quotas hold ``caller``: a user's token, or any token if so configured."""
    return caller.user is not None or bool(setting("QUOTA_SERVICE_TOKENS"))


def count_request(caller: ApiCaller) -> None:
    """Count one API request of ``caller`` (a user across their tokens; each service token
    on its own); ``limits.QuotaExceeded`` over ``QUOTA_REQUESTS_PER_MINUTE``."""
    if applies(caller):
        scope = scope_of(caller.user) if caller.user is not None else caller.name
        limits.count_request(scope, clock.now())


def refused(exc: limits.QuotaExceeded) -> JsonResponse:
    """The 429 of a quota: names it and its limit; ``Retry-After`` in seconds."""
    response = error(
        429,
        f"quota {exc.quota} exceeded (limit {exc.limit}): {exc.detail}",
        quota=exc.quota,
        limit=exc.limit,
        retry_after=exc.retry_after,
    )
    response["Retry-After"] = str(exc.retry_after)
    return response
