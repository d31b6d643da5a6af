"""The OpenAPI paths and schemas of workflows (``web.api.workflows``): a DAG of named jobs.

``openapi.schema`` merges them into the one document; the tests validate every answer.
"""

from __future__ import annotations

from typing import Any

from container_manager.conf import setting
from container_manager.models.workflow_runs import STATUSES
from container_manager.rules import array_edges, contract
from container_manager.rules import status as st
from container_manager.rules.workflow_spec import NODE_NAME
from container_manager.web.openapi_refs import error_responses as _errors
from container_manager.web.openapi_refs import json_content as _json

_NODE_NAME = {"type": "string", "pattern": f"^{NODE_NAME.pattern}$", "maxLength": 63}
_LINK = {"type": "string"}
#: A ``depends_on`` item: a node name (fires on success) or ``{"node": …, "on": …}``.
_EDGE = {
    "oneOf": [
        _NODE_NAME,
        {
            "type": "object",
            "required": ["node"],
            "additionalProperties": False,
            "properties": {
                "node": _NODE_NAME,
                "on": {"type": "string", "enum": list(st.EDGE_CONDITIONS), "default": st.SUCCESS},
                "type": {
                    "type": "string",
                    "enum": list(array_edges.EDGE_TYPES),
                    "description": "n_to_n, between array nodes of one size: child i waits "
                    "only for child i.",
                },
            },
        },
    ]
}


def schemas() -> dict[str, Any]:
    """The components a workflow's operations use, with the bounds of the current settings."""
    node = contract.json_schema()
    node["properties"] = {
        **node["properties"],
        "depends_on": {
            "type": "array",
            "items": _EDGE,
            "description": "Nodes of this workflow to wait for: a name waits for its success "
            "(completed); {node, on} for on = failure (failed or timed out) or always (any "
            "end). When an edge can no longer fire, this node ends skipped, and so on down.",
        },
    }
    node["description"] = (
        "A job spec of POST /jobs/ (or an array spec with array_size); its job is named after "
        "the node unless it has a name."
    )
    summary = {
        "id": {"type": "string", "format": "uuid"},
        "name": {"type": "string"},
        "status": {
            "type": "string",
            "enum": list(STATUSES),
            "description": "Every node pending: pending; any pending, launching or running: "
            "running; all completed or skipped: completed; else failed if a node failed or "
            "timed out, otherwise cancelled.",
        },
        "node_count": {"type": "integer", "minimum": 0},
        "created_at": {"type": "string", "format": "date-time"},
        "cancel_requested_at": {"type": "string", "format": "date-time", "nullable": True},
        "links": {
            "type": "object",
            "required": ["self", "cancel", "retry"],
            "properties": {"self": _LINK, "cancel": _LINK, "retry": _LINK},
        },
    }
    return {
        "WorkflowNode": node,
        "WorkflowSubmit": {
            "type": "object",
            "required": ["nodes"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "maxLength": 200, "pattern": contract.STORABLE},
                "nodes": {
                    "type": "object",
                    "description": "Node name (a letter, then letters, digits, _ or -; 63 "
                    "characters at most) to its job spec. No cycle.",
                    "minProperties": 1,
                    "maxProperties": setting("WORKFLOW_MAX_NODES"),
                    "additionalProperties": {"$ref": "#/components/schemas/WorkflowNode"},
                },
            },
        },
        "WorkflowSummary": {"type": "object", "required": list(summary), "properties": summary},
        "Workflow": {
            "type": "object",
            "required": [*summary, "nodes", "resumes"],
            "properties": {
                **summary,
                "nodes": {"type": "array", "items": _node_state()},
                "resumes": {"type": "array", "items": _resume()},
            },
        },
        "WorkflowList": {
            "type": "object",
            "required": ["workflows"],
            "properties": {
                "workflows": {
                    "type": "array",
                    "description": "The caller's newest workflows, at most 100.",
                    "items": {"$ref": "#/components/schemas/WorkflowSummary"},
                }
            },
        },
    }


def paths(idempotency_key: dict[str, Any]) -> dict[str, Any]:
    """The workflow operations: submit, list, get, cancel and retry (resume) a workflow."""
    workflow_id = {
        "name": "workflow_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }
    return {
        "/workflows/": {
            "get": {
                "operationId": "listWorkflows",
                "summary": "The caller's newest workflows and their status",
                "responses": {
                    "200": {"description": "Newest first", "content": _json("WorkflowList")},
                    **_errors("401", "403", "429"),
                },
            },
            "post": {
                "operationId": "submitWorkflow",
                "summary": "Submit a workflow: every node's job, or nothing",
                "description": "A bad document (an unknown node in depends_on, a cycle, a bad "
                "node name, a field a node's job may not have) is a 400 naming "
                "nodes.<node>.<field>, and nothing is stored.",
                "parameters": [idempotency_key],
                "requestBody": {"required": True, "content": _json("WorkflowSubmit")},
                "responses": {
                    "200": {
                        "description": "A retry with the same Idempotency-Key and body: the "
                        "workflow the first call made",
                        "content": _json("Workflow"),
                    },
                    "201": {"description": "Submitted", "content": _json("Workflow")},
                    **_errors("400", "401", "403", "409", "413", "429"),
                },
            },
        },
        "/workflows/{workflow_id}/": {
            "get": {
                "operationId": "getWorkflow",
                "summary": "A workflow's status and its nodes' jobs",
                "parameters": [workflow_id],
                "responses": {
                    "200": {"description": "The workflow", "content": _json("Workflow")},
                    **_errors("401", "403", "404", "429"),
                },
            }
        },
        "/workflows/{workflow_id}/cancel/": {
            "post": {
                "operationId": "cancelWorkflow",
                "summary": "Cancel every node of the workflow not finished",
                "parameters": [workflow_id],
                "responses": {
                    "202": {"description": "Cancel requested", "content": _json("Workflow")},
                    **_errors("401", "403", "404", "409", "413", "429"),
                },
            }
        },
        "/workflows/{workflow_id}/retry/": {
            "post": {
                "operationId": "retryWorkflow",
                "summary": "Resume a workflow: re-run the nodes that ended badly and after them",
                "description": "Re-runs the nodes that failed, timed out or were cancelled, "
                "and the skipped nodes after them, as new jobs that become those nodes; "
                "completed nodes are kept. 409 while a node has not ended, or when no node "
                "is to re-run. Needs the add permission on container jobs.",
                "parameters": [workflow_id],
                "responses": {
                    "201": {"description": "Resumed", "content": _json("Workflow")},
                    **_errors("401", "403", "404", "409", "413", "429"),
                },
            }
        },
    }


def _resume() -> dict[str, Any]:
    entry = {
        "type": "object",
        "required": ["node", "job", "retry"],
        "properties": {
            "node": {"type": "string"},
            "job": {"type": "string", "format": "uuid", "description": "The node's old job."},
            "retry": {"type": "string", "format": "uuid", "description": "Its new job."},
        },
    }
    return {
        "type": "object",
        "description": "One resume (retryWorkflow), oldest first.",
        "required": ["at", "by", "count", "nodes"],
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "by": {"type": "string", "nullable": True, "description": "Who resumed it."},
            "count": {"type": "integer", "minimum": 1},
            "nodes": {"type": "array", "items": entry},
        },
    }


def _node_state() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["name", "job", "status", "depends_on", "links"],
        "properties": {
            "name": {"type": "string"},
            "job": {"type": "string", "format": "uuid", "description": "The node's job id."},
            "status": {"type": "string", "enum": [value for value, _ in st.STATUS_CHOICES]},
            "depends_on": {"type": "array", "items": _EDGE, "description": "As submitted."},
            "result": {"nullable": True, "description": "Its job's result (returns_result)."},
            "links": {"type": "object", "required": ["job"], "properties": {"job": _LINK}},
        },
    }
