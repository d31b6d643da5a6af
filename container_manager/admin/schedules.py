"""Admin of schedules: next run times, the next five on each page, enable/disable, run now.

The override environment is shown masked; a value left masked in the form keeps the stored one.
Also the job list's filter by schedule; a scheduled job names its schedule in ``executor_metadata``.
A schedule made here is owned by the staff user who adds it; adding or changing one (or "Run
now") needs ``add_containerjob`` too.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from container_manager.admin import _display as show
from container_manager.engine import firing
from container_manager.models.schedules import JobSchedule
from container_manager.rules.cron import zone
from container_manager.rules.secrets import mask_env_text, unmask_env_text

#: Upcoming times shown on a schedule's page.
UPCOMING = 5


class ScheduleFilter(admin.SimpleListFilter):
    """Jobs made by one schedule (for the job list)."""

    title = "schedule"
    parameter_name = "schedule"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(pk), name) for pk, name in JobSchedule.objects.values_list("pk", "name")]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value() is None:
            return queryset
        if not self.value().isdigit():
            return queryset.none()
        return queryset.filter(executor_metadata__schedule__id=int(self.value()))


class JobScheduleForm(forms.ModelForm):
    """The override environment shown masked; a line left as shown keeps its stored value."""

    class Meta:
        model = JobSchedule
        fields = ("override_environment",)  # the admin's fieldsets name the others

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["override_environment"] = mask_env_text(self.instance.override_environment)

    def clean_override_environment(self) -> str:
        text = self.cleaned_data["override_environment"]
        if not self.instance.pk:
            return text
        try:
            return unmask_env_text(text, self.instance.override_environment)
        except ValidationError as exc:
            raise ValidationError(f"override_environment: {exc.messages[0]}") from exc


@admin.register(JobSchedule)
class JobScheduleAdmin(admin.ModelAdmin):
    """Schedules with their next run; "Run now" makes a job at once, as ``overlap`` allows.

    Like the admin's job list, the list shows every user's schedules to staff; the owner is
    set on create to the user adding it and shown read-only.
    """

    list_display = (
        "name", "cron", "timezone", "enabled", "overlap", "next_run_local", "last_run_at",
        "last_outcome",
    )  # fmt: skip
    list_filter = ("enabled", "overlap")
    search_fields = ("name", "docker_image", "command")
    actions = ["enable", "disable", "run_selected"]
    form = JobScheduleForm
    runs = ("upcoming_runs", "next_run_at", "last_run_at", "jobs_link", "last_outcome")
    readonly_fields = (*runs, "override_environment_masked")
    fieldsets = [
        (None, {"fields": ("name", "owner", "cron", "timezone", "enabled", "overlap", "catchup")}),
        ("Job", {"fields": ("job_name", "docker_image", "command", "docker_host")}),
        ("Limits", {"fields": ("memory_limit", "cpu_limit", "timeout_seconds")}),
        ("Environment", {"fields": ("environment_template", "override_environment")}),
        ("Runs", {"fields": runs}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("owner", *super().get_readonly_fields(request, obj))

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Adding a schedule needs ``add_containerjob`` too: it submits jobs as its owner."""
        return super().has_add_permission(request) and request.user.has_perm(firing.ADD_JOBS)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Changing one (its command; "Run now") needs ``add_containerjob`` too, as adding does."""
        allowed = super().has_change_permission(request, obj)
        return allowed and request.user.has_perm(firing.ADD_JOBS)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        """The form; a new schedule's owner is the user adding it, before the name is checked."""
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None:
            return form

        class OwnedForm(form):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.instance.owner = request.user

        return OwnedForm

    def save_model(self, request: HttpRequest, obj: JobSchedule, form: Any, change: bool) -> None:
        if not change:
            obj.owner = request.user
        super().save_model(request, obj, form, change)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list:
        if obj is None or self.has_change_permission(request, obj):
            return self.fieldsets
        masked = ("environment_template", "override_environment_masked")  # read-only: masked
        return [(n, {"fields": masked} if n == "Environment" else o) for n, o in self.fieldsets]

    def render_change_form(self, request: HttpRequest, context: dict, *args: Any, **kwargs: Any):
        context["cm_can_run"] = bool(kwargs.get("obj") and self.has_change_permission(request))
        return super().render_change_form(request, context, *args, **kwargs)

    def get_urls(self) -> list:
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        run = self.admin_site.admin_view(self.run_view)
        return [path("<path:object_id>/run/", run, name=f"{name}_run"), *super().get_urls()]

    def run_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        """POST: make one job of the schedule now."""
        if request.method != "POST" or not self.has_change_permission(request):
            raise PermissionDenied
        schedule = self.get_object(request, unquote(object_id))
        if schedule is None:
            raise Http404("no such schedule")
        self._run(request, schedule)
        change = f"admin:{self.opts.app_label}_{self.opts.model_name}_change"
        return HttpResponseRedirect(reverse(change, args=[schedule.pk]))

    @admin.action(description="Enable selected schedules", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: Any) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected schedules", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: Any) -> None:
        self._set_enabled(request, queryset, False)

    @admin.action(description="Run selected schedules now", permissions=["change"])
    def run_selected(self, request: HttpRequest, queryset: Any) -> None:
        for schedule in queryset.select_related("last_job"):
            self._run(request, schedule)

    @admin.display(description="next run", ordering="next_run_at")
    def next_run_local(self, schedule: JobSchedule) -> str:
        if schedule.next_run_at is None:
            return "-"
        return _local(schedule, schedule.next_run_at)

    @admin.display(description=f"next {UPCOMING} runs")
    def upcoming_runs(self, schedule: JobSchedule) -> str:
        if not schedule.pk or not schedule.enabled:
            return "-"
        times = schedule.upcoming(timezone.now(), UPCOMING)
        return format_html_join("", "<div>{}</div>", ((_local(schedule, t),) for t in times))

    @admin.display(description="override environment")
    def override_environment_masked(self, schedule: JobSchedule) -> str:
        return show.masked_env_block(schedule.override_environment)

    @admin.display(description="jobs")
    def jobs_link(self, schedule: JobSchedule) -> str:
        if not schedule.pk:
            return "-"
        url = reverse("admin:container_manager_containerjob_changelist")
        return format_html('<a href="{}?schedule={}">jobs of this schedule</a>', url, schedule.pk)

    def _set_enabled(self, request: HttpRequest, queryset: Any, enabled: bool) -> None:
        changed = 0
        for schedule in queryset.filter(enabled=not enabled):
            schedule.enabled = enabled
            schedule.save(update_fields=["enabled", "updated_at"])
            changed += 1
        self.message_user(request, f"{'Enabled' if enabled else 'Disabled'} {changed} schedule(s).")

    def _run(self, request: HttpRequest, schedule: JobSchedule) -> None:
        job = firing.run_now(schedule)
        if job is None:
            self.message_user(request, f"{schedule}: {schedule.last_outcome}", messages.WARNING)
        else:
            self.message_user(request, f"{schedule}: submitted job {job.pk}.")


def _local(schedule: JobSchedule, moment: Any) -> str:
    """``moment`` in the schedule's zone, e.g. ``2026-03-29 03:00 CEST``."""
    return moment.astimezone(zone(schedule.timezone)).strftime("%Y-%m-%d %H:%M %Z")
