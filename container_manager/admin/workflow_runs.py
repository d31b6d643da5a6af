"""Admin of workflows submitted as one object: read-only, each node a link to its job's page,
and the page draws the workflow's graph with live states (``admin.workflow_graph``).

The list computes every row's status in its own query (``Workflow.objects.with_counts``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from container_manager import clock
from container_manager.admin import workflow_graph
from container_manager.admin._display import status_badge
from container_manager.models import Workflow


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    """Workflows are made by ``Workflow.objects.submit`` or the API; here they are only read."""

    list_display = ("__str__", "workflow_status", "node_count", "created_by", "created_at")
    list_select_related = ("created_by",)
    search_fields = ("name",)
    readonly_fields = (
        "name", "workflow_status", "created_by", "created_at", "cancel_requested_at", "nodes",
    )  # fmt: skip
    fields = readonly_fields

    class Media:
        css = {"all": ("container_manager/admin/admin.css",)}

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).with_counts()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def render_change_form(self, request: HttpRequest, context: dict, *args: Any, **kwargs: Any):
        """The page draws the workflow's graph above its fields (``admin.workflow_graph``)."""
        if kwargs.get("obj") is not None:
            context.update(workflow_graph.page_context(kwargs["obj"], clock.now()))
        return super().render_change_form(request, context, *args, **kwargs)

    @admin.display(description="status")
    def workflow_status(self, workflow: Workflow) -> str:
        return workflow.status

    @admin.display(description="nodes")
    def node_count(self, workflow: Workflow) -> int:
        return sum(workflow.node_counts().values())

    @admin.display(description="nodes")
    def nodes(self, workflow: Workflow) -> SafeString | str:
        """Each node: its name, a link to its job, its status badge and what it waits for."""
        columns = ("pk", "workflow", "workflow_node", "status")  # workflow: no query per row
        jobs = list(workflow.jobs.order_by("created_at").only(*columns))
        if not jobs:
            return "-"
        spec = (workflow.spec or {}).get("nodes", {})
        rows = format_html_join(
            "",
            '<tr><td>{}</td><td><a href="{}">{}</a></td><td>{}</td><td>{}</td></tr>',
            (
                (
                    job.workflow_node,
                    reverse("admin:container_manager_containerjob_change", args=[job.pk]),
                    str(job.pk)[:8],
                    status_badge(job),
                    _waits_for(spec.get(job.workflow_node, {}).get("depends_on", [])),
                )
                for job in jobs
            ),
        )
        return format_html(
            "<table><thead><tr><th>node</th><th>job</th><th>status</th><th>waits for</th>"
            "</tr></thead><tbody>{}</tbody></table>",
            rows,
        )


def _waits_for(items: list[Any]) -> str:
    """A node's ``depends_on`` in words: ``a, b (on failure)``; an edge on success is a name."""
    words = [
        item if isinstance(item, str) else f"{item['node']} (on {item['on']})" for item in items
    ]
    return ", ".join(words) or "-"
