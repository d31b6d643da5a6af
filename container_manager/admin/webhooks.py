"""Admin of webhooks: endpoints with their events, and every delivery with its attempts.

An endpoint's secret is write-only: shown once when made or rotated, masked everywhere after.
Deliveries are made by moves and written by the ``notify`` step: read-only here and on the job page.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html_join

from container_manager.models.webhooks import EVENTS, WebhookDelivery, WebhookEndpoint, new_secret
from container_manager.rules.secrets import MASK

_DELIVERY_FIELDS = (
    "id", "event", "endpoint", "state", "attempts", "status_code", "error", "duration_ms",
    "next_attempt_at", "delivered_at", "created_at",
)  # fmt: skip


class WebhookEndpointForm(forms.ModelForm):
    """The events as checkboxes; the secret is never a field, only "rotate" on a saved endpoint."""

    events = forms.MultipleChoiceField(
        choices=[(e, e) for e in EVENTS], widget=forms.CheckboxSelectMultiple, required=False
    )
    rotate_secret = forms.BooleanField(
        required=False,
        help_text="Make a new signing secret on save; it is shown once, then never again.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "events", "active")


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Endpoints: where job events are POSTed, signed with the endpoint's secret (write-only)."""

    form = WebhookEndpointForm
    list_display = ("url", "events_display", "active", "owner", "created_at")
    list_filter = ("active",)
    search_fields = ("url",)
    list_select_related = ("owner",)
    readonly_fields = ("owner", "secret_masked")
    actions = ["rotate_secrets"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = ["url", "events", "active"]
        if obj is None:
            return fields
        if self.has_change_permission(request, obj):
            fields.append("rotate_secret")
        return [*fields, "owner", "secret_masked"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """A new endpoint is its maker's (it gets the events of the jobs they may view); a new
        or rotated secret is shown once."""
        if not change:
            obj.owner = request.user
        rotated = change and form.cleaned_data.get("rotate_secret")
        if rotated:
            obj.secret = new_secret()
        super().save_model(request, obj, form, change)
        if rotated or not change:
            _show_once(request, obj)

    @admin.action(
        description="Rotate signing secrets of selected endpoints", permissions=["change"]
    )
    def rotate_secrets(self, request: HttpRequest, queryset: Any) -> TemplateResponse | None:
        for endpoint in queryset:
            endpoint.secret = new_secret()
            endpoint.save(update_fields=["secret"])
            self.log_change(request, endpoint, [{"changed": {"fields": ["secret (rotated)"]}}])
            _show_once(request, endpoint)
        if not hasattr(request, "cm_new_secrets"):
            return None
        return _secret_page(request, request.get_full_path())

    def response_add(self, request: HttpRequest, obj: Any, *args: Any) -> Any:
        """The page that shows the new secret once, then the usual page after "Done"."""
        response = super().response_add(request, obj, *args)
        return _secret_page(request, response.url) if hasattr(response, "url") else response

    def response_change(self, request: HttpRequest, obj: Any) -> Any:
        """After a rotation, the page that shows the new secret once."""
        response = super().response_change(request, obj)
        if hasattr(request, "cm_new_secrets") and hasattr(response, "url"):
            return _secret_page(request, response.url)
        return response

    @admin.display(description="events")
    def events_display(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.events)

    @admin.display(description="secret")
    def secret_masked(self, endpoint: WebhookEndpoint) -> str:
        return MASK


def _show_once(request: HttpRequest, endpoint: Any) -> None:
    """Keep a new secret on the request for ``_secret_page``: never in a message or the session."""
    if not hasattr(request, "cm_new_secrets"):
        request.cm_new_secrets = []
    request.cm_new_secrets.append((endpoint, endpoint.secret))


def _secret_page(request: HttpRequest, next_url: str) -> TemplateResponse:
    """The one page that shows the secrets just made, in its body only."""
    context = {"shown": request.cm_new_secrets, "next_url": next_url, "title": "Signing secret"}
    template = "admin/container_manager/webhookendpoint/secret_once.html"
    return TemplateResponse(request, template, context)


class _ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class WebhookDeliveryInline(_ReadOnly, admin.TabularInline):
    """A job's deliveries, on the job's page."""

    model = WebhookDelivery
    extra = 0
    can_delete = False
    fields = readonly_fields = _DELIVERY_FIELDS[1:]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(_ReadOnly, admin.ModelAdmin):
    """Every delivery and each of its attempts."""

    list_display = ("id", "event", "endpoint", "job", "state", "attempts", "status_code")
    list_filter = ("state", "event", "endpoint")
    search_fields = ("id", "job__id")
    list_select_related = ("endpoint", "job")
    fields = readonly_fields = (*_DELIVERY_FIELDS, "job", "attempt_history", "payload")

    @admin.display(description="attempts")
    def attempt_history(self, delivery: WebhookDelivery) -> str:
        rows = (
            (a["attempt"], a["at"], a["status_code"] or "-", a["duration_ms"], a["error"] or "ok")
            for a in delivery.history
        )
        return format_html_join("", "<div>#{} {} HTTP {} in {} ms: {}</div>", rows)
