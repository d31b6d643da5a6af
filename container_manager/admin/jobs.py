"""Admin of jobs: the list with live status, the submit form, cancel/retry/export, logs, attempts.

Cancel goes through ``job.cancel()`` (the cancel step); retry submits a new job, as terminal
jobs never change.
"""

from __future__ import annotations

import csv
import logging
import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from container_manager.admin import _display as show
from container_manager.admin import arrays, dashboard, jobpage
from container_manager.admin.counting import EstimatedCountPaginator
from container_manager.admin.labels import LabelFilter, labels_html
from container_manager.admin.schedules import ScheduleFilter
from container_manager.admin.search import search_jobs
from container_manager.admin.webhooks import WebhookDeliveryInline
from container_manager.admin.workflows import WORKFLOW_FIELDS, WorkflowDisplayMixin
from container_manager.engine import workflows
from container_manager.engine.retry import RETRYABLE, retry_job
from container_manager.executors.exceptions import ExecutorError
from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost
from container_manager.rules import status as st
from container_manager.rules.logtext import JobLogs, LogSlice, read_offsets
from container_manager.rules.secrets import mask_env_text

logger = logging.getLogger(__name__)

#: What a submitted job asks for; the only fields an operator edits, and only while pending.
REQUEST_FIELDS = (
    "name", "description", "docker_image", "command", "working_directory", "docker_host",
    "environment_template", "override_environment", "network_configuration", "memory_limit",
    "cpu_limit", "timeout_seconds", "priority", "max_attempts",
)  # fmt: skip
#: Columns of the CSV export; ``override_environment`` is written masked.
EXPORT_COLUMNS = (
    "id", "name", "status", "host", "image", "command", "exit_code", "created_at", "started_at",
    "completed_at", "duration_seconds", "environment_template", "override_environment",
)  # fmt: skip
MAX_STATUS_IDS = 200
#: Characters of an image shown in the job list (its end, where the tag is); all in its title.
IMAGE_SHOWN = 28
_LOG_FIELDS = ("stdout_log", "stderr_log", "docker_log", "clean_output")
_PASSED_AS_KWARGS = tuple(
    f
    for f in REQUEST_FIELDS
    if f not in {"docker_image", "command", "name", "docker_host", "environment_template"}
)


class JobSubmitForm(forms.ModelForm):
    """The request fields of a job; an empty host means "any active host"."""

    class Meta:
        model = ContainerJob
        fields = REQUEST_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "docker_host" in self.fields:
            host = self.fields["docker_host"]
            host.required = False
            host.empty_label = "any active host"
            host.queryset = ExecutorHost.objects.filter(is_active=True)
            host.help_text = "Where to run; 'any' lets the scheduler choose by weight and load."

    def clean_docker_host(self) -> ExecutorHost | None:
        """A host, or None for "any" when an active host exists."""
        host = self.cleaned_data.get("docker_host")
        if host is None and not self.instance._state.adding:
            raise ValidationError("Choose a host for a job that was already submitted.")
        if host is None and not ExecutorHost.objects.filter(is_active=True).exists():
            raise ValidationError("No active executor host exists: add or activate one first.")
        return host


class ContainerExecutionInline(admin.TabularInline):
    """Each launch attempt of a job, read-only."""

    model = ContainerExecution
    extra = 0
    can_delete = False
    fields = (
        "attempt", "status", "host", "execution_id", "started_at", "finished_at", "exit_code",
        "error",
    )  # fmt: skip
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("host").defer(*_LOG_FIELDS[:2])

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ContainerExecution)
class ContainerExecutionAdmin(admin.ModelAdmin):
    """Every launch attempt of every job; written by the steps only, so read-only here."""

    list_display = ("attempt_label", "job_link", "status", "host_name", "exit_code", "started")
    list_filter = ("status", "host")
    search_fields = ("execution_id", "job__id", "job__name")
    list_select_related = ("job", "host")
    readonly_fields = (
        "job_link", "attempt", "status", "host", "execution_id", "started_at", "accepted_at",
        "container_started_at", "finished_at", "harvested_at", "platform_times", "exit_code",
        "error", "stdout_display", "stderr_display", "docker_log_display", "max_memory_usage",
        "cpu_usage_percent",
    )  # fmt: skip
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Only with its finished job (the job's delete page asks this for each attempt)."""
        allowed = super().has_delete_permission(request, obj)
        return allowed and obj is not None and obj.job.status in st.TERMINAL

    @admin.display(description="attempt", ordering="attempt")
    def attempt_label(self, execution: ContainerExecution) -> str:
        return f"{str(execution.job_id)[:8]} #{execution.attempt}"

    @admin.display(description="host")
    def host_name(self, execution: ContainerExecution) -> str:
        return execution.host.name if execution.host_id else "-"

    @admin.display(description="started", ordering="started_at")
    def started(self, execution: ContainerExecution) -> str:
        return jobpage.human_time(execution.started_at) if execution.started_at else "-"

    @admin.display(description="job")
    def job_link(self, execution: ContainerExecution) -> str:
        url = reverse("admin:container_manager_containerjob_change", args=[execution.job_id])
        return format_html(
            '<a href="{}">{}</a> {}', url, str(execution.job_id)[:8], execution.job.name
        )

    @admin.display(description="stdout")
    def stdout_display(self, execution: ContainerExecution) -> str:
        return show.log_block(execution.log("stdout_log"))

    @admin.display(description="stderr")
    def stderr_display(self, execution: ContainerExecution) -> str:
        return show.log_block(execution.log("stderr_log"))

    @admin.display(description="platform log")
    def docker_log_display(self, execution: ContainerExecution) -> str:
        return show.log_block(execution.log("docker_log"))


class ExecutorTypeFilter(admin.SimpleListFilter):
    """Jobs by their host's executor type; the choices come from the hosts, not the jobs."""

    title = "executor type"
    parameter_name = "docker_host__executor_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        types = ExecutorHost.objects.order_by("executor_type").values_list("executor_type")
        return [(kind, kind) for (kind,) in types.distinct()]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value() is None:
            return queryset
        hosts = ExecutorHost.objects.filter(executor_type=self.value()).values("pk")
        return queryset.filter(docker_host__in=hosts)


class _JobChangeList(ChangeList):
    """The job list loads no logs: a page of 100 jobs stays small."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None):
        return super().get_queryset(request, exclude_parameters).defer(*_LOG_FIELDS)


@admin.register(ContainerJob)
class ContainerJobAdmin(WorkflowDisplayMixin, admin.ModelAdmin):
    """Jobs with live status; submit, cancel, retry and export go through the steps.

    Retry submits a new job with the same request and links both ways ("retry of",
    "retried as"), because a finished job never changes status again. Request fields are
    editable only while a job is pending; everything else is written by the steps.

    The list stays cheap at a million jobs: its order (newest first) and each filter
    are served by an index, the count is exact up to ``COUNT_CAP`` matches and then the
    cap (filtered) or PostgreSQL's estimate (unfiltered), and only the job id and the
    creation time are sortable. A search is answered from indexes on PostgreSQL
    (``admin.search``).
    """

    # Narrow columns, so that the list with the sidebar and the filters fits 1400 px.
    list_display = (
        "short_id", "name", "status_badge", "host_name", "image_short", "duration_display",
        "exit_code_display", "cost_display", "created_short",
    )  # fmt: skip
    list_filter = (
        "status", "docker_host", ExecutorTypeFilter, "created_at", ScheduleFilter, LabelFilter,
    )  # fmt: skip
    search_fields = ("id", "name", "docker_image", "command", "docker_host__name")
    list_per_page = 100
    # At a million jobs: counts capped or estimated, no second full count, and sorting only
    # by the columns an index serves (``cjob_list_idx``, the primary key).
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    sortable_by = ("short_id", "created_short")
    actions = ["cancel_jobs", "retry_jobs", "export_csv"]
    form = JobSubmitForm
    inlines = [ContainerExecutionInline, WebhookDeliveryInline]
    readonly_fields = (
        "status_badge", "exit_code_display", "duration_display", "attempt_count", "started_at",
        "completed_at", "last_error", "cancel_requested_at", "retry_links", "created_by",
        "created_at", "updated_at", "override_environment_masked", "environment_masked",
        "stdout_display", "stderr_display", "clean_output_display", "docker_log_display",
        "max_memory_usage", "cpu_usage_percent", "execution_id", "run_after", "next_check_at",
        "lease_expires_at", "executor_metadata", "cost_display", "timeline_display",
        "labels_display", "executor_metadata_display", *WORKFLOW_FIELDS,
    )  # fmt: skip

    class Media:
        css = {"all": ("container_manager/admin/admin.css",)}
        js = ("container_manager/admin/live.js",)

    # -- hooks -----------------------------------------------------------------

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("docker_host")

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return _JobChangeList

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str):
        """Jobs matching every term by name, image, command, host name or whole id."""
        return search_jobs(queryset, search_term), False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Model-level change permission; a launched job's request can no longer be edited."""
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or obj.status == st.PENDING)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Only finished jobs are deleted (a live one still owns a container).

        The bulk delete action refuses a selection holding a live job, as the admin does
        for any object the user may not delete.
        """
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or obj.status in st.TERMINAL)

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> list:
        """Attempts and deliveries of a saved job; an array parent has no attempt of its own."""
        if obj is None:
            return []
        if _never_ran(obj):
            return [WebhookDeliveryInline]
        return self.inlines

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list:
        """The answer first (the outcome is drawn above the fieldsets), then the output, the
        timeline, the workflow; the request and the details collapsed unless editable."""
        if obj is None:
            return _SUBMIT_FIELDSETS
        editable = self.has_change_permission(request, obj)
        # read-only displays never show secrets
        env = "override_environment" if editable else "override_environment_masked"
        in_workflow = obj.array_size is not None or obj.has_dependents or obj.depends_on.exists()
        return _job_fieldsets(env, editable, obj, in_workflow)

    def save_model(self, request: HttpRequest, obj: ContainerJob, form: Any, change: bool) -> None:
        """A new job is submitted through ``create_job`` (validated, sent on commit)."""
        if change:
            super().save_model(request, obj, form, change)
            return
        job = ContainerJob.objects.create_job(
            image=obj.docker_image,
            command=obj.command,
            name=obj.name,
            environment_template=obj.environment_template,
            docker_host=obj.docker_host if obj.docker_host_id else None,
            id=obj.pk,
            created_by=request.user,
            **{field: getattr(obj, field) for field in _PASSED_AS_KWARGS},
        )
        obj.docker_host = job.docker_host
        obj._state.adding, obj._state.db = False, job._state.db
        logger.info(
            "job %s submitted from the admin by user %s (variables: %s)",
            job.pk,
            request.user.pk,
            ", ".join(job.get_override_environment_variables_dict()) or "none",
        )

    def render_change_form(self, request: HttpRequest, context: dict, *args: Any, **kwargs: Any):
        obj = kwargs.get("obj")
        may_act = super().has_change_permission(request)
        context.update(
            cm_can_cancel=bool(obj and may_act and obj.status in st.LIVE),
            cm_can_retry=bool(
                obj and may_act and obj.status in RETRYABLE and obj.workflow_id is None
            ),
        )
        if obj is not None:
            context["cm_outcome"] = jobpage.outcome_block(obj, may_act, self.retry_links(obj))
        return super().render_change_form(request, context, *args, **kwargs)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        """The list; filtered to an array's children, it says so (``arrays.filtered_note``)."""
        context = {**(extra_context or {}), **arrays.filtered_note(request)}
        return super().changelist_view(request, context)

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("status/", wrap(self.status_view), name=f"{name}_status"),
            path("dashboard/", wrap(self.dashboard_view), name=f"{name}_dashboard"),
            path("<path:object_id>/cancel/", wrap(self.cancel_view), name=f"{name}_cancel"),
            path("<path:object_id>/retry/", wrap(self.retry_view), name=f"{name}_retry"),
            path("<path:object_id>/logs/", wrap(self.logs_view), name=f"{name}_logs"),
            *super().get_urls(),
        ]

    # -- views -----------------------------------------------------------------

    def status_view(self, request: HttpRequest) -> JsonResponse:
        """``{"jobs": {id: {status, label, live, exit_code, duration}}}`` for ``?ids=a,b``."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        ids = _valid_uuids(request.GET.get("ids", "").split(",")[:MAX_STATUS_IDS])
        jobs = ContainerJob.objects.filter(pk__in=ids).only(
            "id", "status", "exit_code", "started_at", "completed_at"
        )
        return JsonResponse({"jobs": {str(job.pk): _status_payload(job) for job in jobs}})

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        """Counts by status, jobs finished per hour over a day, load per host."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return dashboard.render(request, self.admin_site, self.opts)

    def logs_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """The job's output after ``?stdout_offset=&stderr_offset=``, as the API's logs answer.

        ``live.js`` follows a live job's stdout and stderr with it until ``complete``.
        """
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        job = self.get_object(request, unquote(object_id))
        if job is None:
            raise Http404("no such job")
        if not self.has_view_or_change_permission(request, job):
            raise PermissionDenied
        try:
            offsets = read_offsets(request.GET)
        except ValidationError as exc:
            return JsonResponse({"error": "; ".join(exc.messages)}, status=400)
        logs = _read_logs(job, **offsets)
        if logs is None:
            return JsonResponse({"error": "the platform's logs cannot be read now"}, status=503)
        return JsonResponse({"status": job.status, **logs.as_json()})

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        """POST: ask the cancel step to stop the job's container."""
        job = self._target(request, object_id)
        if job.cancel():
            logger.info("cancel of job %s requested by user %s", job.pk, request.user.pk)
            self.message_user(request, "Cancel requested: the container is being stopped.")
        else:
            self.message_user(request, "The job had already finished.", messages.WARNING)
        return HttpResponseRedirect(_change_url(job))

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        """POST: submit a new job with this job's request and open it."""
        job = self._target(request, object_id)
        try:
            new = retry_job(job, request.user)
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            return HttpResponseRedirect(_change_url(job))
        self.message_user(
            request,
            f"Submitted job {new.pk} as a retry of {job.pk}{_with_count(len(new.brought_back))}.",
        )
        return HttpResponseRedirect(_change_url(new))

    # -- actions ---------------------------------------------------------------

    @admin.action(description="Cancel selected jobs", permissions=["change"])
    def cancel_jobs(self, request: HttpRequest, queryset) -> None:
        cancelled = [job.pk for job in queryset.filter(status__in=st.LIVE) if job.cancel()]
        logger.info("cancel of %d job(s) requested by user %s", len(cancelled), request.user.pk)
        self.message_user(request, f"Cancel requested for {len(cancelled)} job(s).")

    @admin.action(description="Retry selected failed jobs (as new jobs)", permissions=["change"])
    def retry_jobs(self, request: HttpRequest, queryset) -> None:
        """``retry_job`` each, oldest first: a dependency's retry brings its dependents back."""
        retried, brought, skipped = 0, 0, 0
        for job in queryset.select_related("docker_host").order_by("created_at"):
            try:
                brought += len(retry_job(job, request.user).brought_back)
                retried += 1
            except ValidationError:
                skipped += 1
        self.message_user(request, f"Submitted {retried} retry job(s){_with_count(brought)}.")
        if skipped:
            self.message_user(
                request, f"{skipped} job(s) skipped: only failed, timed-out or cancelled jobs "
                "not retried yet are retried, and array children with their array.",
                messages.WARNING,
            )  # fmt: skip

    @admin.action(description="Export selected jobs as CSV (secrets masked)", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="container-jobs.csv"'
        writer = csv.writer(response)
        writer.writerow(EXPORT_COLUMNS)
        rows = queryset.select_related("environment_template").defer(*_LOG_FIELDS)
        writer.writerows([_csv_safe(value) for value in _export_row(job)] for job in rows)
        return response

    # -- columns and read-only displays ------------------------------------------

    @admin.display(description="job", ordering="id")
    def short_id(self, job: ContainerJob) -> str:
        return str(job.pk)[:8]

    @admin.display(description="status", ordering="status")
    def status_badge(self, job: ContainerJob) -> str:
        return show.status_badge(job)

    @admin.display(description="exit", ordering="exit_code")
    def exit_code_display(self, job: ContainerJob) -> str:
        return show.live_field(job, "exit_code", _exit_code(job))

    @admin.display(description="host")
    def host_name(self, job: ContainerJob) -> str:
        return job.docker_host.name

    @admin.display(description="image")
    def image_short(self, job: ContainerJob) -> str:
        image = job.docker_image
        shown = image if len(image) <= IMAGE_SHOWN else f"…{image[-IMAGE_SHOWN + 1 :]}"
        return format_html('<span title="{}">{}</span>', image, shown)

    @admin.display(description="created", ordering="created_at")
    def created_short(self, job: ContainerJob) -> str:
        """``Dec 07 15:42``, the full time in its title."""
        short = timezone.localtime(job.created_at).strftime("%b %d %H:%M")
        return format_html('<span title="{}">{}</span>', jobpage.human_time(job.created_at), short)

    @admin.display(description="duration")
    def duration_display(self, job: ContainerJob) -> str:
        return show.live_field(job, "duration", show.format_duration(job.runtime_duration))

    @admin.display(description="labels")
    def labels_display(self, job: ContainerJob) -> str:
        return labels_html(job.labels)

    @admin.display(description="cost", ordering="estimated_cost")
    def cost_display(self, job: ContainerJob) -> str:
        return show.cost_text(job)

    @admin.display(description="phases per attempt")
    def timeline_display(self, job: ContainerJob) -> str:
        executions = job.containerexecution_set.select_related("job").defer(*_LOG_FIELDS[:2])
        return jobpage.timeline_block(job, list(executions))

    @admin.display(description="executor metadata")
    def executor_metadata_display(self, job: ContainerJob) -> str:
        metadata = job.executor_metadata if isinstance(job.executor_metadata, dict) else {}
        return show.key_values(metadata)

    @admin.display(description="retries")
    def retry_links(self, job: ContainerJob) -> str:
        links = []
        original = (job.executor_metadata or {}).get("retry_of")
        if original:
            links.append(("retry of", _change_url_for(original), original))
        retried = ContainerJob.objects.filter(executor_metadata__retry_of=str(job.pk))
        links += [("retried as", _change_url_for(pk), pk) for pk in retried.values_list("pk")]
        if not links:
            return "-"
        return format_html_join(mark_safe("<br>"), '{} <a href="{}">{}</a>', links)

    @admin.display(description="override environment")
    def override_environment_masked(self, job: ContainerJob) -> str:
        return show.masked_env_block(job.override_environment)

    @admin.display(description="effective environment (template + overrides)")
    def environment_masked(self, job: ContainerJob) -> str:
        try:
            variables = {
                **job.get_all_environment_variables(),
                **workflows.array_environment(job),
            }
        except ValidationError:
            return "(the template does not parse)"
        text = "\n".join(f"{key}={value}" for key, value in variables.items())
        return show.masked_env_block(text)

    @admin.display(description="stdout")
    def stdout_display(self, job: ContainerJob) -> str:
        if job.status in st.LIVE:
            return show.followed_log_block("stdout", _page_logs(job, "stdout"))
        return show.log_block(job.stdout_log)

    @admin.display(description="stderr")
    def stderr_display(self, job: ContainerJob) -> str:
        if job.status in st.LIVE:
            return show.followed_log_block("stderr", _page_logs(job, "stderr"))
        return show.log_block(job.stderr_log)

    @admin.display(description="clean output")
    def clean_output_display(self, job: ContainerJob) -> str:
        if job.status in st.LIVE:
            return show.empty_note("(kept when the job ends; stdout above is live)")
        return show.log_block(job.clean_output_processed)

    @admin.display(description="platform log")
    def docker_log_display(self, job: ContainerJob) -> str:
        return show.log_block(job.docker_log)

    def _target(self, request: HttpRequest, object_id: str) -> ContainerJob:
        if request.method != "POST":
            raise PermissionDenied("POST only")
        if not super().has_change_permission(request):
            raise PermissionDenied
        job = self.get_object(request, unquote(object_id))
        if job is None:
            raise Http404("no such job")
        return job


_SUBMIT_FIELDSETS = [
    (None, {"fields": ("name", "docker_image", "command", "docker_host")}),
    ("Limits", {"fields": ("memory_limit", "cpu_limit", "timeout_seconds")}),
    ("Environment", {"fields": ("environment_template", "override_environment")}),
    (
        "More",
        {
            "classes": ("collapse",),
            "fields": (
                "description", "working_directory", "network_configuration", "priority",
                "max_attempts",
            ),
        },
    ),
]  # fmt: skip


def _job_fieldsets(env_field: str, editable: bool, job: ContainerJob, in_workflow: bool) -> list:
    """A saved job's fieldsets; what an operator reads first is drawn above them (outcome).

    An array parent runs no container: its children come first, and it has no output; nor
    has a job that ended before any launch.
    """
    folded = {} if editable else {"classes": ("collapse",)}
    request = (
        *_SUBMIT_FIELDSETS[0][1]["fields"], *_SUBMIT_FIELDSETS[3][1]["fields"], "labels_display",
    )  # fmt: skip
    workflow = [("Workflow", {"fields": WORKFLOW_FIELDS})] if in_workflow else []
    timeline = [("Timeline", {"fields": ("timeline_display",)})]
    if _never_ran(job):
        fieldsets = [*workflow, *timeline]
    else:
        output = [("Output", {"fields": ("stdout_display", "stderr_display")})]
        fieldsets = [*output, *timeline, *workflow]
    return [
        *fieldsets,
        ("Request", {**folded, "fields": request}),
        ("Limits", {**folded, "fields": ("memory_limit", "cpu_limit", "timeout_seconds")}),
        (
            "Environment",
            {**folded, "fields": ("environment_template", env_field, "environment_masked")},
        ),
        (
            "Executor",
            {
                "classes": ("collapse",),
                "fields": (
                    "execution_id", "executor_metadata_display", "docker_log_display",
                    "max_memory_usage", "cpu_usage_percent", "clean_output_display",
                ),
            },
        ),
        (
            "Times",
            {
                "classes": ("collapse",),
                "fields": (
                    "created_at", "created_by", "started_at", "completed_at",
                    "cancel_requested_at", "run_after", "next_check_at", "lease_expires_at",
                    "updated_at",
                ),
            },
        ),
    ]  # fmt: skip


def _never_ran(job: ContainerJob) -> bool:
    """An array parent, or a job that ended before any attempt: no output, no attempt to show."""
    return job.is_array_parent or (job.status in st.TERMINAL and not job.attempt_count)


def _read_logs(job: ContainerJob, stdout_offset: int = 0, stderr_offset: int = 0) -> JobLogs | None:
    """``job.read_logs``, or None (logged) when the platform cannot be read now."""
    try:
        return job.read_logs(stdout_offset, stderr_offset)
    except ExecutorError:
        logger.warning("logs of job %s could not be read from its platform", job.pk, exc_info=True)
        return None


def _page_logs(job: ContainerJob, stream: str) -> LogSlice | None:
    """One stream of a live job's output, read once for both of the page's displays."""
    if not hasattr(job, "_cm_page_logs"):
        job._cm_page_logs = _read_logs(job)
    logs = job._cm_page_logs
    return None if logs is None else getattr(logs, stream)


def _status_payload(job: ContainerJob) -> dict[str, Any]:
    return {
        "status": job.status,
        "label": job.get_status_display(),
        "live": job.status in st.LIVE,
        "exit_code": _exit_code(job),
        "duration": show.format_duration(job.runtime_duration),
    }


def _exit_code(job: ContainerJob) -> str:
    return "-" if job.exit_code is None else str(job.exit_code)


def _valid_uuids(values: list[str]) -> list[uuid.UUID]:
    ids = []
    for value in values:
        try:
            ids.append(uuid.UUID(value.strip()))
        except ValueError:
            continue
    return ids


def _with_count(brought: int) -> str:
    return f", with {brought} cancelled dependent job(s) brought back" if brought else ""


def _change_url(job: ContainerJob) -> str:
    return _change_url_for(job.pk)


def _change_url_for(pk: Any) -> str:
    return reverse("admin:container_manager_containerjob_change", args=[pk])


def _export_row(job: ContainerJob) -> list[Any]:
    duration = job.duration
    return [
        job.pk, job.name, job.status, job.docker_host.name, job.docker_image, job.command,
        job.exit_code, job.created_at, job.started_at, job.completed_at,
        None if duration is None else duration.total_seconds(),
        job.environment_template.name if job.environment_template else "",
        mask_env_text(job.override_environment),
    ]  # fmt: skip


def _csv_safe(value: Any) -> Any:
    # A cell starting with = + - @ is run as a formula by spreadsheets, also after a tab, CR or LF.
    if isinstance(value, str) and (
        value[:1] in ("\t", "\r") or value.lstrip(" \t\r\n")[:1] in ("=", "+", "-", "@")
    ):
        return "'" + value
    return "" if value is None else value
