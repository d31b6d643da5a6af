"""Admin of workflows submitted as one object: read-only, each node a link to its job's page;
the page draws the workflow's graph with live states (``admin.workflow_graph``), and a
"Resume" button re-runs what ended badly (``engine.retry.retry_workflow``).

The list computes every row's status in its own query (``Workflow.objects.with_counts``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from container_manager import clock
from container_manager.admin import workflow_graph
from container_manager.admin._display import status_badge
from container_manager.engine.retry import RETRYABLE, retry_workflow
from container_manager.models import Workflow
from container_manager.rules import status as st

#: The permission a resume needs, as a job's retry in the job admin.
RESUME_PERMISSION = "container_manager.change_containerjob"


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    """Workflows are made by ``Workflow.objects.submit`` or the API; here they are only read."""

    list_display = ("__str__", "workflow_status", "node_count", "created_by", "created_at")
    list_select_related = ("created_by",)
    search_fields = ("name",)
    readonly_fields = (
        "name", "workflow_status", "created_by", "created_at", "cancel_requested_at", "nodes",
        "resumes",
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

    def get_urls(self) -> list:
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view(self.retry_view)
        return [path("<path:object_id>/retry/", view, name=f"{name}_retry"), *super().get_urls()]

    def render_change_form(self, request: HttpRequest, context: dict, *args: Any, **kwargs: Any):
        """The page: the graph above the fields (``admin.workflow_graph``), and the "Resume"
        button once every node has ended, one of them badly, if the user may retry (a resume
        of a live workflow is refused)."""
        workflow = kwargs.get("obj")
        context["cm_can_resume"] = bool(
            workflow is not None
            and request.user.has_perm(RESUME_PERMISSION)
            and workflow.status not in st.LIVE
            and workflow.jobs.filter(status__in=RETRYABLE).exists()
        )
        if workflow is not None:
            context.update(workflow_graph.page_context(workflow, clock.now()))
        return super().render_change_form(request, context, *args, **kwargs)

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        """POST: resume the workflow, then show its page with what was re-run (or why not)."""
        if request.method != "POST":
            raise PermissionDenied("POST only")
        if not request.user.has_perm(RESUME_PERMISSION):
            raise PermissionDenied
        workflow = self.get_object(request, unquote(object_id))
        if workflow is None:
            raise Http404("no such workflow")
        try:
            resume = retry_workflow(workflow, request.user)
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
        else:
            names = ", ".join(resume.node_names)
            self.message_user(request, f"Resumed: {resume.count} node(s) re-run ({names}).")
        page = f"admin:{self.opts.app_label}_{self.opts.model_name}_change"
        return HttpResponseRedirect(reverse(page, args=[workflow.pk]))

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

    @admin.display(description="resumes")
    def resumes(self, workflow: Workflow) -> SafeString | str:
        """Each resume: when, by whom, and the nodes it re-ran, each a link to its old job."""
        done = list(workflow.resumes.select_related("user"))
        if not done:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    resume.at.strftime("%Y-%m-%d %H:%M:%S"),
                    resume.user or "-",
                    resume.count,
                    format_html_join(", ", '<a href="{}">{}</a>', _old_jobs(resume.nodes)),
                )
                for resume in done
            ),
        )
        return format_html(
            "<table><thead><tr><th>at</th><th>by</th><th>nodes re-run</th>"
            "<th>old jobs</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )


def _old_jobs(nodes: list[dict[str, str]]) -> list[tuple[str, str]]:
    page = "admin:container_manager_containerjob_change"
    return [(reverse(page, args=[entry["job"]]), entry["node"]) for entry in nodes]


def _waits_for(items: list[Any]) -> str:
    """A node's ``depends_on`` in words: ``a, b (on failure)``; an edge on success is a name."""
    words = [
        item if isinstance(item, str) else f"{item['node']} (on {item['on']})" for item in items
    ]
    return ", ".join(words) or "-"
