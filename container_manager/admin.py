"""Django admin registrations: jobs with their attempts, hosts, environment templates."""

from django.contrib import admin, messages

from container_manager.models import (
    ContainerExecution,
    ContainerJob,
    EnvironmentVariableTemplate,
    ExecutorHost,
)


class ContainerExecutionInline(admin.TabularInline):
    """Each launch attempt of a job, read-only."""

    model = ContainerExecution
    extra = 0
    can_delete = False
    fields = (
        "attempt",
        "status",
        "host",
        "execution_id",
        "started_at",
        "finished_at",
        "exit_code",
        "error",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ContainerJob)
class ContainerJobAdmin(admin.ModelAdmin):
    """Jobs with live status, host, image, duration and exit code."""

    list_display = (
        "id",
        "name",
        "status",
        "docker_host",
        "docker_image",
        "exit_code",
        "duration",
        "created_at",
    )
    list_filter = ("status", "docker_host")
    search_fields = ("id", "name", "docker_image", "command")
    list_select_related = ("docker_host",)
    inlines = [ContainerExecutionInline]
    actions = ["cancel_jobs"]
    readonly_fields = tuple(sorted(ContainerJob.SYSTEM_FIELDS)) + ("created_at", "updated_at")

    @admin.action(description="Cancel selected jobs", permissions=["change"])
    def cancel_jobs(self, request, queryset):
        cancelled = sum(1 for job in queryset if job.cancel())
        self.message_user(request, f"Cancel requested for {cancelled} job(s).", messages.SUCCESS)


@admin.register(ExecutorHost)
class ExecutorHostAdmin(admin.ModelAdmin):
    """Hosts with capacity and health."""

    list_display = (
        "name", "executor_type", "is_active", "current_job_count", "max_concurrent_jobs",
        "weight", "last_health_ok",
    )  # fmt: skip
    list_filter = ("executor_type", "is_active")
    search_fields = ("name", "connection_string")
    readonly_fields = tuple(sorted(ExecutorHost.SYSTEM_FIELDS))


@admin.register(EnvironmentVariableTemplate)
class EnvironmentVariableTemplateAdmin(admin.ModelAdmin):
    """Environment templates; values are not shown in the list."""

    list_display = ("name", "description", "updated_at")
    search_fields = ("name", "description")
