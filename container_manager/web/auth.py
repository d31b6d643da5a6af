"""Who may push steps and call the API: Google OIDC ID tokens, HMAC signatures, API tokens.

Settings: ``CONTAINER_MANAGER["AUTH"]`` (OIDC and HMAC) and ``["API_TOKENS"]``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from container_manager.conf import setting

SIGNATURE_HEADER = "X-CM-Signature"
TIMESTAMP_HEADER = "X-CM-Timestamp"
GOOGLE_ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"

AUTH_DEFAULTS: dict[str, Any] = {
    "HMAC_SECRET": "",
    "HMAC_MAX_AGE": 300,
    "OIDC_AUDIENCES": [],
    "OIDC_SERVICE_ACCOUNTS": [],
    "OIDC_CERTS_URL": GOOGLE_CERTS_URL,
    "OIDC_CERTS_TIMEOUT": 5.0,
    "OIDC_CERTS_FAILURE_TTL": 30.0,
}


class AuthError(Exception):
    """A request that may not act: ``status`` is 401 (who are you?), 403 (not you) or 503
    (the signing certificates cannot be read now: try again)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Pusher:
    """Who pushed a step, and what to record once it was carried out."""

    scheme: str
    identity: str
    signature: str = ""
    expires_at: float = 0.0

    def accepted(self) -> None:
        """Remember an HMAC signature that was acted on, so a replay of it is refused."""
        if self.scheme == "hmac":
            _remember_signature(self.signature, self.expires_at)


def auth_setting(name: str) -> Any:
    """``CONTAINER_MANAGER["AUTH"][name]`` or its default."""
    return {**AUTH_DEFAULTS, **(setting("AUTH") or {})}[name]


def authenticate_push(request: HttpRequest) -> Pusher:
    """Check a step or sweep push; raise ``AuthError`` (nothing has been done yet)."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return _verify_oidc(header.removeprefix("Bearer ").strip())
    if SIGNATURE_HEADER in request.headers:
        return _verify_hmac(request)
    raise AuthError(401, "no credentials: send a Google OIDC token or an HMAC signature")


@dataclass(frozen=True)
class ApiCaller:
    """Who calls the JSON API: a user's ``ApiToken`` or a service token of ``API_TOKENS``.

    A service token may do everything and sees every job; a user's token acts
    with that user's Django permissions and sees the user's own jobs only,
    unless the user has ``container_manager.view_all_jobs``.
    """

    name: str
    user: Any = None

    def may(self, action: str) -> bool:
        """May this caller ``add``, ``view`` or ``change`` container jobs?"""
        return self.user is None or self.user.has_perm(f"container_manager.{action}_containerjob")

    def require(self, action: str, model: str) -> None:
        """A 403 ``AuthError`` unless this caller may ``action`` objects of ``model``.

        ``model`` is a model name of this app (``jobschedule``, ``webhookendpoint`` …); a
        user's token needs the Django permission ``container_manager.<action>_<model>``.
        """
        if self.user is None or self.user.has_perm(f"container_manager.{action}_{model}"):
            return
        from django.apps import apps

        things = apps.get_model("container_manager", model)._meta.verbose_name_plural
        raise AuthError(403, f"this token's user may not {action} {things}")

    def visible(self, jobs: Any) -> Any:
        """The part of the ``jobs`` queryset this caller may see (``models.owners``)."""
        from container_manager.models.owners import owned_by

        return owned_by(jobs, self.user)


def authenticate_api(request: HttpRequest) -> ApiCaller:
    """Check a JSON API call's bearer token: a user's ``ApiToken`` or one of ``API_TOKENS``."""
    from container_manager.models.tokens import ApiToken

    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise AuthError(401, "send 'Authorization: Bearer <token>'")
    given = header.removeprefix("Bearer ").strip()
    for token in [t for t in setting("API_TOKENS") or [] if t]:
        if hmac.compare_digest(given.encode(errors="replace"), token.encode()):
            return ApiCaller("service:" + hashlib.sha256(token.encode()).hexdigest()[:8])
    owned = ApiToken.objects.find(given) if given else None
    if owned is None:
        raise AuthError(403, "unknown or revoked API token")
    return ApiCaller(f"token:{owned.pk}", owned.user)


#: The permission a user's token needs to read ``cm/metrics/`` (every host's figures).
VIEW_METRICS = "container_manager.view_metrics"


def authenticate_metrics(request: HttpRequest) -> ApiCaller:
    """The default ``METRICS_AUTH``: a service token, or a user's token with ``view_metrics``.

    The metrics count every user's jobs on every host, so an ordinary user's token is a 403.
    """
    caller = authenticate_api(request)
    if caller.user is not None and not caller.user.has_perm(VIEW_METRICS):
        raise AuthError(403, f"this token's user may not read metrics (needs {VIEW_METRICS})")
    return caller


def sign_request(
    method: str, path: str, body: bytes, secret: str | None = None, timestamp: float | None = None
) -> dict[str, str]:
    """Headers that sign a request for ``_verify_hmac``; ``timestamp`` is when it may arrive.

    >>> headers = sign_request("POST", "/cm/steps/launch/", b"{}", secret="s", timestamp=1.0)
    >>> headers["X-CM-Timestamp"], len(headers["X-CM-Signature"])
    ('1.000', 64)
    """
    stamp = f"{time.time() if timestamp is None else timestamp:.3f}"
    key = (secret if secret is not None else auth_setting("HMAC_SECRET")).encode()
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: _digest(key, stamp, method, path, body)}


def forget_expired_signatures() -> int:
    """Delete remembered signatures past their age limit; returns how many went."""
    from container_manager.models import UsedSignature

    deleted, _ = UsedSignature.objects.filter(expires_at__lt=timezone.now()).delete()
    return deleted


# -- HMAC ---------------------------------------------------------------------------


def _verify_hmac(request: HttpRequest) -> Pusher:
    from container_manager.models import UsedSignature

    secret = auth_setting("HMAC_SECRET")
    if not secret:
        raise AuthError(401, "HMAC signatures are not accepted: no HMAC_SECRET is configured")
    stamp = request.headers.get(TIMESTAMP_HEADER, "")
    try:
        sent_at = float(stamp)
    except ValueError:
        sent_at = math.nan
    if not math.isfinite(sent_at):
        raise AuthError(401, f"{TIMESTAMP_HEADER} is missing or not a finite number")
    max_age = float(auth_setting("HMAC_MAX_AGE"))
    if abs(time.time() - sent_at) > max_age:
        raise AuthError(401, f"signature timestamp is more than {max_age:g}s away from now")
    expected = _digest(secret.encode(), stamp, request.method, request.path, request.body)
    given = request.headers.get(SIGNATURE_HEADER, "")
    if not hmac.compare_digest(expected, given):
        raise AuthError(403, "bad HMAC signature")
    if UsedSignature.objects.filter(signature=given).exists():
        raise AuthError(403, "replayed request: this signature was already acted on")
    return Pusher("hmac", "hmac", signature=given, expires_at=sent_at + max_age)


def _digest(key: bytes, stamp: str, method: str, path: str, body: bytes) -> str:
    message = "\n".join([stamp, method.upper(), path, hashlib.sha256(body).hexdigest()])
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def _remember_signature(signature: str, expires_at: float) -> None:
    from container_manager.models import UsedSignature

    expiry = timezone.now() + timedelta(seconds=max(expires_at - time.time(), 0))
    try:
        with transaction.atomic():
            UsedSignature.objects.create(signature=signature, expires_at=expiry)
    except IntegrityError:
        pass  # a concurrent copy of the same push got there first; both did the same thing


# -- Google OIDC --------------------------------------------------------------------

#: What a refused OIDC token is told: a fixed phrase per kind of fault, never the token itself.
_OIDC_FAULTS = (
    ("audience", "wrong audience"),
    ("expired", "expired"),
    ("too early", "not yet valid"),
    ("signature", "bad signature"),
    ("certificate", "bad signature"),
    ("segments", "malformed"),
)


class CertCache:
    """Google's signing certificates per URL, fetched with a timeout and no lock held meanwhile.

    Good certificates are kept for the ``max-age`` Google gives; a failed fetch
    is remembered for ``OIDC_CERTS_FAILURE_TTL`` seconds, so a certificate
    endpoint that is down costs one timeout, not one per request. ``clock`` is
    injectable for tests.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, dict[str, str] | None, str]] = {}

    def get(self, url: str) -> dict[str, str]:
        """The certificates at ``url``; raise ``AuthError(503)`` when they cannot be read."""
        with self._lock:
            entry = self._entries.get(url)
        if entry is not None and self.clock() < entry[0]:
            certs, error = entry[1], entry[2]
            if certs is None:
                raise AuthError(503, error)
            return certs
        try:
            certs, lifetime = _fetch_certs(url, float(auth_setting("OIDC_CERTS_TIMEOUT")))
        except AuthError as exc:
            until = self.clock() + float(auth_setting("OIDC_CERTS_FAILURE_TTL"))
            with self._lock:
                self._entries[url] = (until, None, exc.reason)
            raise
        with self._lock:
            self._entries[url] = (self.clock() + lifetime, certs, "")
        return certs

    def clear(self) -> None:
        """Forget every remembered fetch."""
        with self._lock:
            self._entries.clear()


_certs = CertCache()


def _verify_oidc(token: str) -> Pusher:
    from google.auth import jwt

    audiences = list(auth_setting("OIDC_AUDIENCES"))
    accounts = set(auth_setting("OIDC_SERVICE_ACCOUNTS"))
    if not audiences or not accounts:
        raise AuthError(401, "OIDC tokens are not accepted: no OIDC_AUDIENCES/SERVICE_ACCOUNTS")
    certs = _certs.get(auth_setting("OIDC_CERTS_URL"))
    try:
        claims = jwt.decode(token, certs=certs, audience=audiences)
    except (ValueError, KeyError, TypeError) as exc:
        raise AuthError(401, f"invalid OIDC token: {_oidc_fault(exc)}") from None
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise AuthError(401, f"OIDC token issuer {str(claims.get('iss'))[:100]!r} is not Google")
    email = str(claims.get("email", ""))[:200]
    if email not in accounts:
        raise AuthError(403, f"service account {email!r} may not push steps")
    if claims.get("email_verified") is not True:
        raise AuthError(403, f"the email of {email!r} is not verified")
    return Pusher("oidc", email)


def _oidc_fault(exc: Exception) -> str:
    text = str(exc).lower()
    return next((fault for word, fault in _OIDC_FAULTS if word in text), "not a valid ID token")


def _fetch_certs(url: str, timeout: float) -> tuple[dict[str, str], float]:
    import requests

    try:
        response = requests.get(url, timeout=timeout)
        response.raise_for_status()
        certs = response.json()
    except (requests.RequestException, json.JSONDecodeError) as exc:
        kind = type(exc).__name__
        raise AuthError(503, f"cannot read the OIDC signing certificates now ({kind})") from None
    if not isinstance(certs, dict):
        raise AuthError(503, "cannot read the OIDC signing certificates now (not an object)")
    match = re.search(r"max-age=(\d+)", response.headers.get("Cache-Control", ""))
    return certs, float(match.group(1)) if match else 300.0
