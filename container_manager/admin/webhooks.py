"""Admin of webhooks: endpoints with their events, and every delivery with its attempts.

Deliveries are made by moves and written by the ``notify`` step: read-only here and on the job page.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html_join

from container_manager.models.webhooks import EVENTS, WebhookDelivery, WebhookEndpoint

_DELIVERY_FIELDS = (
    "id", "event", "endpoint", "state", "attempts", "status_code", "error", "duration_ms",
    "next_attempt_at", "delivered_at", "created_at",
)  # fmt: skip


class WebhookEndpointForm(forms.ModelForm):
    """The events as checkboxes."""

    events = forms.MultipleChoiceField(
        choices=[(e, e) for e in EVENTS], widget=forms.CheckboxSelectMultiple, required=False
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "events", "secret", "active")


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Endpoints: where job events are POSTed, signed with the endpoint's secret."""

    form = WebhookEndpointForm
    list_display = ("url", "events_display", "active", "owner", "created_at")
    list_filter = ("active",)
    search_fields = ("url",)
    list_select_related = ("owner",)
    readonly_fields = ("owner",)

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool):
        """A new endpoint is its maker's: it gets the events of the jobs they may view."""
        if not change:
            obj.owner = request.user
        super().save_model(request, obj, form, change)

    @admin.display(description="events")
    def events_display(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.events)


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
