"""Admin displays of a job's workflow: what it waits for, what waits for it, its array.

A mixin of read-only fields for the job admin; every job named is a link to its page.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from container_manager.admin import arrays
from container_manager.admin.jobpage import children_url
from container_manager.engine import workflows
from container_manager.models import ContainerJob
from container_manager.rules import status as st

#: At most this many related jobs are listed on a job's page; the rest are counted.
SHOWN = 50
#: Read-only fields the mixin adds, for the job admin's fieldsets.
WORKFLOW_FIELDS = ("waits_for", "waited_for_by", "array_progress")


class WorkflowDisplayMixin:
    """Read-only fields linking a job to its dependencies, dependents and array."""

    @admin.display(description="waits for")
    def waits_for(self, job: ContainerJob) -> str:
        return _job_links(job.depends_on.order_by("created_at"))

    @admin.display(description="waited for by")
    def waited_for_by(self, job: ContainerJob) -> str:
        return _job_links(job.dependents.order_by("created_at"))

    @admin.display(description="array")
    def array_progress(self, job: ContainerJob) -> str:
        if job.is_array_parent:
            counts = workflows.status_counts(job)
            summary = format_html(
                '{} of {} children ended — <a href="{}">the children in the job list</a>',
                sum(n for status, n in counts.items() if status in st.TERMINAL),
                job.array_size,
                children_url(job.pk),
            )
            return format_html("{}{}", summary, arrays.grid(job, counts))
        if job.array_parent_id:
            return format_html(
                'child {} of {} of <a href="{}">{}</a>',
                job.array_index,
                job.array_size,
                _change_url(job.array_parent_id),
                job.array_parent_id,
            )
        return "-"


def _job_links(queryset) -> SafeString | str:
    total = queryset.count()
    if not total:
        return "-"
    rows = queryset.values_list("pk", "name", "status")[:SHOWN]
    links = format_html_join(
        mark_safe("<br>"),
        '<a href="{}">{}</a> {} ({})',
        ((_change_url(pk), str(pk)[:8], name, status) for pk, name, status in rows),
    )
    if total > SHOWN:
        return format_html("{}<br>… and {} more", links, total - SHOWN)
    return links


def _change_url(pk) -> str:
    return reverse("admin:container_manager_containerjob_change", args=[pk])
