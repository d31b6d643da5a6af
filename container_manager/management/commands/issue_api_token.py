"""Issue a JSON API token for a user: ``manage.py issue_api_token USERNAME [--name NAME]``.

The secret is printed once; only its hash is stored, so it cannot be shown again.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from container_manager.models.tokens import ApiToken


class Command(BaseCommand):
    """Create an ``ApiToken`` acting as USERNAME and print its secret on standard output."""

    help = "Issue a JSON API token acting as USERNAME; the secret is printed once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The user the token acts as.")
        parser.add_argument("--name", default="", help="What the token is for, e.g. 'ci'.")

    def handle(self, *args: Any, **options: Any) -> None:
        model = get_user_model()
        try:
            user = model.objects.get(**{model.USERNAME_FIELD: options["username"]})
        except model.DoesNotExist:
            raise CommandError(f"no user {options['username']!r}") from None
        if not user.is_active:
            raise CommandError(f"user {options['username']!r} is inactive")
        token, secret = ApiToken.objects.issue(user, name=options["name"])
        self.stderr.write(f"Token {token.pk} for {user} issued; its secret is shown only now:")
        self.stdout.write(secret)
