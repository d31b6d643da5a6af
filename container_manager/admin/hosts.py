"""Admin of executor hosts: health, capacity and running jobs; a connection test per host.

The test calls ``host.health_check()``, which records its answer on the host.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from container_manager.admin import _display as show
from container_manager.models import ExecutorHost
from container_manager.rules import status as st
from container_manager.rules.secrets import mask_url


@admin.register(ExecutorHost)
class ExecutorHostAdmin(admin.ModelAdmin):
    """Hosts with health, capacity and running count; "test connection" needs change permission.

    For a user who may not change the host, ``executor_config`` values whose keys
    look secret and passwords in URLs (there and in ``connection_string``) are
    masked, and ``connection_string`` is not searchable (a search would reveal it).
    """

    list_display = (
        "name", "executor_type", "is_active", "health", "capacity", "running_jobs", "weight",
    )  # fmt: skip
    list_filter = ("executor_type", "is_active", "last_health_ok")
    search_fields = ("name", "connection_string")
    actions = ["test_connection"]
    readonly_fields = (
        "capacity", "running_jobs", "health", "last_health_check_at",
        "last_health_error", "unreachable_since", "executor_config_masked",
        "connection_string_masked",
    )  # fmt: skip

    class Media:
        css = {"all": ("container_manager/admin/admin.css",)}

    def get_queryset(self, request: HttpRequest):
        return (
            super()
            .get_queryset(request)
            .annotate(running=Count("jobs", filter=Q(jobs__status=st.RUNNING)))
        )

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        if self.has_change_permission(request):
            return self.search_fields
        return ("name",)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list:
        config, connection = "executor_config", "connection_string"
        if obj is not None and not self.has_change_permission(request, obj):
            config, connection = "executor_config_masked", "connection_string_masked"
        settings = ("name", "executor_type", connection, "host_type", config)
        fieldsets = [
            (None, {"fields": settings}),
            ("Scheduling", {"fields": ("is_active", "max_concurrent_jobs", "weight")}),
            ("Docker", {"fields": ("tls_enabled", "tls_verify", "auto_pull_images")}),
        ]
        if obj is not None:
            fieldsets.append(
                (
                    "Now",
                    {
                        "fields": (
                            "capacity",
                            "running_jobs",
                            "health",
                            "last_health_check_at",
                            "last_health_error",
                            "unreachable_since",
                        )
                    },
                )  # fmt: skip
            )
        return fieldsets

    def render_change_form(self, request: HttpRequest, context: dict, *args: Any, **kwargs: Any):
        obj = kwargs.get("obj")
        context["cm_can_test"] = bool(obj and self.has_change_permission(request, obj))
        return super().render_change_form(request, context, *args, **kwargs)

    def get_urls(self) -> list:
        name = f"{self.opts.app_label}_{self.opts.model_name}_test"
        view = self.admin_site.admin_view(self.test_connection_view)
        return [path("<path:object_id>/test/", view, name=name), *super().get_urls()]

    def test_connection_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        """POST: run the host's health check and say what it found."""
        if request.method != "POST" or not self.has_change_permission(request):
            raise PermissionDenied
        host = self.get_object(request, unquote(object_id))
        if host is None:
            raise Http404("no such host")
        self._report(request, host)
        url = reverse("admin:container_manager_executorhost_change", args=[host.pk])
        return HttpResponseRedirect(url)

    @admin.action(description="Test connection of selected hosts", permissions=["change"])
    def test_connection(self, request: HttpRequest, queryset) -> None:
        for host in queryset:
            self._report(request, host)

    @admin.display(description="health", ordering="last_health_ok")
    def health(self, host: ExecutorHost) -> str:
        if host.last_health_ok is None:
            return format_html('<span class="cm-health cm-health-unknown">{}</span>', "not tested")
        state = "ok" if host.last_health_ok else "failing"
        checked = host.last_health_check_at or ""
        html = '<span class="cm-health cm-health-{}" title="checked {}">{}</span>'
        if host.unreachable_since:
            # Set by the steps when they cannot reach the platform; cleared when it answers.
            text = f"unreachable since {host.unreachable_since:%Y-%m-%d %H:%M:%S %Z}"
            return format_html(html, "failing", host.last_health_error, text)
        return format_html(html, state, checked, state)

    @admin.display(description="capacity", ordering="current_job_count")
    def capacity(self, host: ExecutorHost) -> str:
        """Slots in use (from the slot rows, exact) of ``max_concurrent_jobs``."""
        used = host.current_job_count
        percent = min(100, round(100 * used / max(host.max_concurrent_jobs, 1)))
        return format_html(
            '<span class="cm-meter" title="{} of {} slots in use"><span style="width:{}%">'
            "</span></span> {}/{}",
            used, host.max_concurrent_jobs, percent, used, host.max_concurrent_jobs,
        )  # fmt: skip

    @admin.display(description="running", ordering="running")
    def running_jobs(self, host: ExecutorHost) -> int:
        return getattr(host, "running", 0)

    @admin.display(description="connection string")
    def connection_string_masked(self, host: ExecutorHost) -> str:
        return mask_url(host.connection_string or "")

    @admin.display(description="executor config")
    def executor_config_masked(self, host: ExecutorHost) -> str:
        config = host.executor_config if isinstance(host.executor_config, dict) else {}
        return show.key_values(config)

    def _report(self, request: HttpRequest, host: ExecutorHost) -> None:
        if host.health_check():
            self.message_user(request, f"{host.name}: connection OK.")
        else:
            self.message_user(
                request, f"{host.name}: {host.last_health_error or 'unhealthy'}", messages.ERROR
            )
