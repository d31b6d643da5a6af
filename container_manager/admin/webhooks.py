"""Admin of webhooks: endpoints with their events, and every delivery with its attempts.

An endpoint's secret is write-only: shown once when made or rotated, masked everywhere after.
Deliveries are made by moves and written by the ``notify`` step: read-only here and on the job page.
"Send a test event" and "redeliver" only write rows (``engine.outbox``); the ``notify`` step sends.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from container_manager.engine import outbox
from container_manager.models.webhooks import (
    EVENTS,
    TEST_EVENT,
    WebhookDelivery,
    WebhookEndpoint,
    new_secret,
)
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
    actions = ["rotate_secrets", "send_test_event"]

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

    @admin.action(description="Send a test event to selected endpoints", permissions=["change"])
    def send_test_event(self, request: HttpRequest, queryset: Any) -> None:
        """A ``webhook.test`` delivery per endpoint, sent by the ``notify`` step, not here."""
        made = [outbox.write_test(endpoint) for endpoint in queryset]
        listing = reverse("admin:container_manager_webhookdelivery_changelist")
        self.message_user(
            request,
            format_html(
                'Queued {} test event(s): <a href="{}?event__exact={}">see the deliveries</a>.',
                len(made),
                listing,
                TEST_EVENT,
            ),  # fmt: skip
        )

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

    list_display = ("short_id", "event", "endpoint", "job_short", "state", "attempts", "http")
    list_filter = ("state", "event", "endpoint")
    search_fields = ("id", "job__id")
    list_select_related = ("endpoint", "job")
    fields = readonly_fields = (*_DELIVERY_FIELDS, "job", "attempt_history", "payload")
    actions = ["redeliver"]

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        """Redelivering needs the model's change permission (the rows stay read-only)."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.action(description="Redeliver selected deliveries", permissions=["redeliver"])
    def redeliver(self, request: HttpRequest, queryset: Any) -> None:
        """Delivered or failed deliveries go back to pending; the ``notify`` step sends them."""
        ids = list(queryset.values_list("pk", flat=True))
        again = sum(outbox.redeliver(pk) for pk in ids)
        self.message_user(request, f"Queued {again} delivery(ies) to be sent again.")
        if again < len(ids):
            self.message_user(
                request, f"{len(ids) - again} still pending: they are sent on their own.",
                messages.WARNING,
            )  # fmt: skip

    @admin.display(description="delivery", ordering="id")
    def short_id(self, delivery: WebhookDelivery) -> str:
        return str(delivery.pk)[:8]

    @admin.display(description="HTTP", ordering="status_code")
    def http(self, delivery: WebhookDelivery) -> str:
        return "-" if delivery.status_code is None else str(delivery.status_code)

    @admin.display(description="job")
    def job_short(self, delivery: WebhookDelivery) -> str:
        return str(delivery.job_id)[:8] if delivery.job_id else "-"

    @admin.display(description="attempts")
    def attempt_history(self, delivery: WebhookDelivery) -> str:
        rows = (
            (a["attempt"], a["at"], a["status_code"] or "-", a["duration_ms"], a["error"] or "ok")
            for a in delivery.history
        )
        return format_html_join("", "<div>#{} {} HTTP {} in {} ms: {}</div>", rows)
