"""API tokens that belong to users: only a hash of each secret is stored, shown once when issued.

A token acts as its user under Django's permissions (see ``container_manager.web.auth``).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

#: Every issued secret starts with this, so a leaked one is easy to recognise and search for.
PREFIX = "cm_"
#: ``last_used`` is written at most this often per token, so reads do not each cost a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_secret(secret: str) -> str:
    """The stored form of a secret: its SHA-256 (secrets are random, a slow hash adds nothing).

    >>> len(hash_secret("cm_x"))
    64
    """
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class ApiTokenManager(models.Manager):
    """``issue`` a token; ``find`` the live token for a presented secret."""

    def issue(self, user, name: str = "") -> tuple[ApiToken, str]:
        """Create a token for ``user``; return it and its secret, which is not stored.

        >>> from django.contrib.auth.models import User
        >>> token, secret = ApiToken.objects.issue(User.objects.create(username="doc"), "ci")
        >>> secret.startswith("cm_"), token.secret_hash == hash_secret(secret)
        (True, True)
        """
        secret = PREFIX + secrets.token_urlsafe(32)
        token = self.create(user=user, name=name, secret_hash=hash_secret(secret))
        return token, secret

    def find(self, secret: str) -> ApiToken | None:
        """The unrevoked token of an active user whose secret this is, or None."""
        token = (
            self.select_related("user")
            .filter(secret_hash=hash_secret(secret), revoked_at__isnull=True, user__is_active=True)
            .first()
        )
        if token is not None:
            token.touch()
        return token


class ApiToken(models.Model):
    """A bearer token of the JSON API, owned by a user; revoke it to stop it working."""

    name = models.CharField(max_length=100, blank=True, default="", help_text="What it is for.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        help_text="The token acts as this user, with their permissions.",
    )
    secret_hash = models.CharField(
        max_length=64, unique=True, editable=False, help_text="SHA-256 of the secret."
    )
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When it was revoked; empty: live."
    )

    objects = ApiTokenManager()

    class Meta:
        app_label = "container_manager"
        verbose_name = "API token"
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name or 'token'} of {self.user}"

    @property
    def revoked(self) -> bool:
        """True once revoked."""
        return self.revoked_at is not None

    def revoke(self) -> None:
        """Stop the token working, now and for good."""
        ApiToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        self.refresh_from_db(fields=["revoked_at"])

    def touch(self) -> None:
        """Record a use, unless one was recorded less than a minute ago."""
        now = timezone.now()
        if self.last_used is None or now - self.last_used >= LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=self.pk).update(last_used=now)
            self.last_used = now


class UsedSignature(models.Model):
    """
    An HMAC-signed push that was acted on: a replay of it is refused until it expires.

    Written by ``container_manager.web.auth`` after a signed step or sweep push
    succeeded (a retry after a failed attempt is therefore still accepted);
    expired rows are deleted by the sweep endpoint.
    """

    signature = models.CharField(max_length=64, unique=True, help_text="The HMAC hex digest.")
    expires_at = models.DateTimeField(db_index=True, help_text="When the signature's age ran out.")

    class Meta:
        verbose_name = "used request signature"

    def __str__(self) -> str:
        return f"{self.signature[:12]}… until {self.expires_at:%Y-%m-%d %H:%M:%S}"
