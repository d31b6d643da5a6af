"""Admin of API tokens: who owns each, when it was last used; revoke with an action.

Tokens are issued with ``manage.py issue_api_token`` (the secret is shown once), not here.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest

from container_manager.models.tokens import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are read-only here; "revoke" needs change permission and is final."""

    list_display = ("name", "user", "created", "last_used", "revoked")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "user__username")
    readonly_fields = ("name", "user", "created", "last_used", "revoked_at")
    fields = readonly_fields
    actions = ["revoke_tokens"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(boolean=True, description="revoked")
    def revoked(self, token: ApiToken) -> bool:
        return token.revoked

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset) -> None:
        tokens = list(queryset.filter(revoked_at__isnull=True))
        for token in tokens:
            token.revoke()
        self.message_user(request, f"{len(tokens)} token(s) revoked.", messages.SUCCESS)
