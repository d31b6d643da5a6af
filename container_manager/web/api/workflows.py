"""The JSON API of workflows: submit one document, list them, read one with its nodes, cancel it,
resume it.

The rules are ``Workflow.objects.submit``'s and ``rules.workflow_spec``'s; the permissions are
those of container jobs, and another user's workflow answers like an unknown id.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.urls import reverse

from container_manager.engine.retry import retry_workflow
from container_manager.models import Workflow
from container_manager.models.workflow_runs import status_of
from container_manager.rules import results
from container_manager.web import quotas
from container_manager.web.api.jobs import _require, api_view, idempotency_key, json_object
from container_manager.web.api.rows import not_found
from container_manager.web.auth import ApiCaller
from container_manager.web.errors import error

#: The most workflows ``GET api/workflows/`` lists, newest first.
LIST_LIMIT = 100


@api_view("GET", "POST")
def workflows_view(request: HttpRequest, caller: ApiCaller) -> JsonResponse:
    """GET: the caller's newest workflows with their status; POST: submit one (201)."""
    if request.method == "POST":
        _require(caller, "add")
        workflow = Workflow.objects.submit(
            json_object(request.body),
            caller.user,
            limited=quotas.applies(caller),
            idempotency_key=idempotency_key(request),
        )
        replayed = getattr(workflow, "replayed", False)
        return JsonResponse(workflow_json(request, workflow), status=200 if replayed else 201)
    _require(caller, "view")
    rows = caller.visible(Workflow.objects.with_counts())[:LIST_LIMIT]
    return JsonResponse({"workflows": [_summary(request, w, w.node_counts()) for w in rows]})


@api_view("GET")
def workflow_view(request: HttpRequest, caller: ApiCaller, workflow_id: str) -> JsonResponse:
    """A workflow's status and its nodes, each with its job's id, status and link."""
    _require(caller, "view")
    workflow = _visible(caller, workflow_id)
    if workflow is None:
        return not_found("workflow", workflow_id)
    return JsonResponse(workflow_json(request, workflow))


@api_view("POST")
def workflow_cancel_view(request: HttpRequest, caller: ApiCaller, workflow_id: str) -> JsonResponse:
    """Cancel every node not finished (202), or say the workflow already ended (409)."""
    _require(caller, "change")
    workflow = _visible(caller, workflow_id)
    if workflow is None:
        return not_found("workflow", workflow_id)
    if not workflow.cancel():
        return error(409, f"workflow is already {workflow.status}")
    return JsonResponse(workflow_json(request, workflow), status=202)


@api_view("POST")
def workflow_retry_view(request: HttpRequest, caller: ApiCaller, workflow_id: str) -> JsonResponse:
    """Resume the workflow (``engine.retry.retry_workflow``): 201 with the workflow.

    Needs the ``add`` permission on container jobs, as a job's retry. A workflow the caller may
    not see answers 404 like an unknown id; one with a node not ended, or with nothing to
    re-run, a 409 saying so. A user's token is held to its quotas (429).
    """
    _require(caller, "add")
    workflow = _visible(caller, workflow_id)
    if workflow is None:
        return not_found("workflow", workflow_id)
    try:
        retry_workflow(workflow, caller.user, limited=quotas.applies(caller))
    except ValidationError as exc:
        return error(409, "; ".join(exc.messages), fields=exc.message_dict)
    return JsonResponse(workflow_json(request, workflow), status=201)


def workflow_json(request: HttpRequest, workflow: Workflow) -> dict[str, Any]:
    """``workflow`` as ``GET api/workflows/{id}/`` shows it: a query for nodes, one for resumes."""
    jobs = workflow.jobs.order_by("created_at")
    rows = list(jobs.values_list("pk", "workflow_node", "status", "result"))
    spec_nodes = (workflow.spec or {}).get("nodes", {})
    nodes = [
        {
            "name": name,
            "job": str(pk),
            "status": status,
            "depends_on": spec_nodes.get(name, {}).get("depends_on", []),
            "result": results.as_value(result),
            "links": {"job": _link(request, "api-job", pk)},
        }
        for pk, name, status, result in rows
    ]
    counts = Counter(status for _, _, status, _ in rows)
    return {**_summary(request, workflow, counts), "nodes": nodes, "resumes": _resumes(workflow)}


def _summary(request: HttpRequest, workflow: Workflow, counts: dict[str, int]) -> dict[str, Any]:
    requested = workflow.cancel_requested_at
    return {
        "id": str(workflow.pk),
        "name": workflow.name,
        "status": status_of(counts),
        "node_count": sum(counts.values()),
        "created_at": workflow.created_at.isoformat(),
        "cancel_requested_at": requested.isoformat() if requested else None,
        "links": {
            "self": _link(request, "api-workflow", workflow.pk),
            "cancel": _link(request, "api-workflow-cancel", workflow.pk),
            "retry": _link(request, "api-workflow-retry", workflow.pk),
        },
    }


def _resumes(workflow: Workflow) -> list[dict[str, Any]]:
    return [
        {
            "at": resume.at.isoformat(),
            "by": resume.user.get_username() if resume.user else None,
            "count": resume.count,
            "nodes": resume.nodes,
        }
        for resume in workflow.resumes.select_related("user")
    ]


def _visible(caller: ApiCaller, text: str) -> Workflow | None:
    try:
        pk = uuid.UUID(text)
    except ValueError:
        return None
    return caller.visible(Workflow.objects.all()).filter(pk=pk).first()


def _link(request: HttpRequest, name: str, pk: Any) -> str:
    return request.build_absolute_uri(reverse(f"container_manager:{name}", args=[pk]))
