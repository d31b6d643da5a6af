"""The OpenAPI 3.0 description of the JSON API (served at ``api/openapi.json``).

Kept beside ``api.py``; the tests validate the document and every response against it.
"""

from __future__ import annotations

from typing import Any

from container_manager.engine.timings import PHASE_KEYS
from container_manager.rules import contract
from container_manager.rules import status as st
from container_manager.rules.idempotency import MAX_KEY_LENGTH
from container_manager.rules.logtext import LIVE, MAX_OFFSET, NONE, OFFSET_PARAMETERS, STORED
from container_manager.web import openapi_objects, openapi_workflows
from container_manager.web.api.listing import DEFAULT_LIMIT, MAX_LIMIT
from container_manager.web.openapi_refs import error_responses as _errors
from container_manager.web.openapi_refs import json_content as _json

_STATUSES = [value for value, _ in st.STATUS_CHOICES]
_NULLABLE_TIME = {"type": "string", "format": "date-time", "nullable": True}

_PHASES = list(PHASE_KEYS.values())
_ATTEMPT_TIMINGS = {
    "type": "object",
    "required": ["attempt", "status", "phases", "platform_times"],
    "properties": {
        "attempt": {"type": "integer", "minimum": 1},
        "status": {"type": "string"},
        "phases": {
            "type": "object",
            "description": "Phase name to time; phases not reached yet are left out.",
            "properties": {name: {"type": "string", "format": "date-time"} for name in _PHASES},
            "additionalProperties": False,
        },
        "platform_times": {
            "type": "object",
            "description": "The platform's names (ECS createdAt, Docker StartedAt...) to time.",
            "additionalProperties": {"type": "string", "format": "date-time"},
        },
    },
}

_JOB = {
    "type": "object",
    "required": [
        "id",
        "name",
        "status",
        "docker_image",
        "host",
        "attempts",
        "created_at",
        "labels",
        "links",
    ],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "name": {"type": "string"},
        "status": {"type": "string", "enum": _STATUSES},
        "docker_image": {"type": "string"},
        "command": {"type": "string"},
        "host": {"type": "string", "description": "Name of the executor host."},
        "labels": {
            "type": "object",
            "description": "The job's labels, key to value.",
            "additionalProperties": {"type": "string"},
        },
        "exit_code": {"type": "integer", "nullable": True},
        "returns_result": {"type": "boolean", "description": "Submitted with returns_result."},
        "result": {
            "nullable": True,
            "description": "The JSON value of its stdout's last line, stored when a job with "
            "returns_result completed; null otherwise.",
        },
        "attempts": {"type": "integer", "minimum": 0},
        "last_error": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": _NULLABLE_TIME,
        "completed_at": _NULLABLE_TIME,
        "duration_seconds": {"type": "number", "nullable": True},
        "estimated_cost": {
            "type": "string",
            "nullable": True,
            "description": "Estimated cost as a decimal, in cost_currency; null until harvested "
            "or when the platform has no price.",
        },
        "cost_currency": {"type": "string", "description": "e.g. USD; empty when free."},
        "timings": {
            "type": "array",
            "description": "Each launch attempt's phases and the platform's own timestamps.",
            "items": _ATTEMPT_TIMINGS,
        },
        "depends_on": {
            "type": "array",
            "items": {"type": "string", "format": "uuid"},
            "description": "Jobs that must complete before this one launches.",
        },
        "array": {
            "type": "object",
            "nullable": True,
            "description": (
                "Set on an array parent (index and parent null, counts of its children by "
                "status) and on each child (its index and its parent)."
            ),
            "required": ["size", "index", "parent"],
            "properties": {
                "size": {"type": "integer", "minimum": 2},
                "index": {"type": "integer", "minimum": 0, "nullable": True},
                "parent": {"type": "string", "format": "uuid", "nullable": True},
                "max_parallel": {
                    "type": "integer",
                    "minimum": 1,
                    "nullable": True,
                    "description": "Most children launching or running at once; null: no limit.",
                },
                "tolerated_failures": {
                    # null is an unset limit: nullable in one branch, so oneOf holds.
                    "oneOf": [
                        {"type": "integer", "minimum": 0, "nullable": True},
                        {"type": "string", "pattern": "%$"},
                    ],
                    "description": "Children that may fail or time out (a count or a percent "
                    "such as '10%') before the array fails; null: any failure fails it.",
                },
                "counts": {
                    "type": "object",
                    "additionalProperties": {"type": "integer", "minimum": 0},
                },
            },
        },
        "links": {
            "type": "object",
            "required": ["self", "logs", "cancel"],
            "properties": {
                "self": {"type": "string"},
                "logs": {"type": "string"},
                "cancel": {"type": "string"},
            },
        },
    },
}

_JOB_PAGE = {
    "type": "object",
    "required": ["jobs", "next_cursor"],
    "properties": {
        "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
        "next_cursor": {
            "type": "string",
            "nullable": True,
            "description": "Pass as cursor for the next page; null on the last page.",
        },
    },
}

_OFFSET = {"type": "integer", "format": "int64", "minimum": 0, "maximum": MAX_OFFSET}
_LOGS = {
    "type": "object",
    "description": (
        "A job's stdout and stderr after the asked offsets: read live from the platform while "
        "the job runs, the stored logs once it ended. Each stream's text is at most "
        "LOG_MAX_BYTES; to follow the job, pass stdout_offset and stderr_offset back until "
        "complete is true."
    ),
    "required": [
        "id", "status", "stdout", "stderr", "clean_output", "truncated", "stdout_offset",
        "stderr_offset", "complete", "source",
    ],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "status": {"type": "string"},
        "stdout": {"type": "string", "description": "Standard output from stdout_offset on."},
        "stderr": {"type": "string", "description": "Standard error from stderr_offset on."},
        "clean_output": {"type": "string", "description": "stdout without timestamps."},
        "truncated": {
            "type": "boolean",
            "description": "Bytes after the asked offset were dropped by the LOG_MAX_BYTES cap "
            "(only the tail of a stream is kept): the text starts later.",
        },
        "stdout_offset": {
            **_OFFSET,
            "description": "Bytes of stdout up to the end of this text: the next stdout_offset.",
        },
        "stderr_offset": {
            **_OFFSET,
            "description": "Bytes of stderr up to the end of this text: the next stderr_offset.",
        },
        "complete": {
            "type": "boolean",
            "description": "The job ended and its stored logs were returned to their end: "
            "nothing more will come.",
        },
        "source": {
            "type": "string",
            "enum": [LIVE, STORED, NONE],
            "description": "live: read from the platform now; stored: kept at the end of the "
            "job; none: not running yet, or its platform gives no output while it runs.",
        },
    },
}  # fmt: skip

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "fields": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        "fields_omitted": {"type": "integer", "description": "Fields at fault not named."},
        "quota": {
            "type": "string",
            "enum": ["requests_per_minute", "rows_per_request", "active_jobs"],
        },
        "limit": {"type": "integer", "description": "The quota's limit."},
        "retry_after": {"type": "integer", "description": "As the Retry-After header."},
        "limit_bytes": {"type": "integer", "description": "The largest body accepted."},
    },
}
_REPLAYED = "A retry with the same Idempotency-Key and body: the {} the first call made"
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "A retry with the key the same caller sent within IDEMPOTENCY_WINDOW_SECONDS "
        "(default 24 h) answers 200 with what the first call made; with another body, 409."
    ),
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_KEY_LENGTH,
        "pattern": "^[ -~]+$",
    },
}
_TOO_MANY = {
    "description": "A quota of the caller is used up; wait Retry-After seconds",
    "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def schema(server_url: str = "/cm/api") -> dict[str, Any]:
    """The OpenAPI document, its one server being ``server_url``.

    >>> sorted(schema()["paths"])[:6]  # doctest: +NORMALIZE_WHITESPACE
    ['/jobs/', '/jobs/{job_id}/', '/jobs/{job_id}/cancel/', '/jobs/{job_id}/logs/',
     '/jobs/{job_id}/retry/', '/openapi.json']
    """
    job_id = {
        "name": "job_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "container_manager API",
            "version": "1",
            "description": (
                "Submit container jobs and workflows of them, read their status and logs, "
                "cancel them. A user's "
                "token is held to quotas (requests per minute, rows per request, active "
                "jobs): over one, a 429 with Retry-After. Error bodies are bounded."
            ),
        },
        "servers": [{"url": server_url}],
        "security": [{"apiToken": []}],
        "components": {
            "securitySchemes": {
                "apiToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "A user's token (manage.py issue_api_token): that user's permissions "
                        "and jobs; or a service token of API_TOKENS: every job."
                    ),
                }
            },
            "schemas": {
                "Job": _JOB,
                "JobSubmit": contract.json_schema(),
                "JobLogs": _LOGS,
                "JobPage": _JOB_PAGE,
                "Error": _ERROR,
                **openapi_objects.schemas(),
                **openapi_workflows.schemas(),
            },
            "responses": {
                "Error": {"description": "Refused or invalid", "content": _json("Error")},
                "TooManyRequests": _TOO_MANY,
            },
        },
        "paths": {
            "/jobs/": {
                "get": {
                    "operationId": "listJobs",
                    "summary": "A page of jobs, newest first, filtered",
                    "parameters": _list_parameters(),
                    "responses": {
                        "200": {
                            "description": "Jobs, newest first, and the cursor of the next page",
                            "content": _json("JobPage"),
                        },
                        **_errors("400", "401", "403", "429"),
                    },
                },
                "post": {
                    "operationId": "submitJob",
                    "summary": "Submit a job",
                    "parameters": [_IDEMPOTENCY_KEY],
                    "requestBody": {"required": True, "content": _json("JobSubmit")},
                    "responses": {
                        "200": {"description": _REPLAYED.format("job"), "content": _json("Job")},
                        "201": {"description": "Submitted", "content": _json("Job")},
                        **_errors("400", "401", "403", "409", "413", "429"),
                    },
                },
            },
            "/jobs/{job_id}/": {
                "get": {
                    "operationId": "getJob",
                    "summary": "A job's status",
                    "parameters": [job_id],
                    "responses": {
                        "200": {"description": "The job", "content": _json("Job")},
                        **_errors("401", "403", "404", "429"),
                    },
                }
            },
            "/jobs/{job_id}/logs/": {
                "get": {
                    "operationId": "getJobLogs",
                    "summary": "A job's logs, live while it runs",
                    "parameters": [job_id, *_offset_parameters()],
                    "responses": {
                        "200": {"description": "After the offsets", "content": _json("JobLogs")},
                        **_errors("400", "401", "403", "404", "429", "503"),
                    },
                }
            },
            "/jobs/{job_id}/cancel/": {
                "post": {
                    "operationId": "cancelJob",
                    "summary": "Cancel a job",
                    "parameters": [job_id],
                    "responses": {
                        "202": {"description": "Cancel requested", "content": _json("Job")},
                        **_errors("401", "403", "404", "409", "413", "429"),
                    },
                }
            },
            "/jobs/{job_id}/retry/": {
                "post": {
                    "operationId": "retryJob",
                    "summary": "Retry a failed, timed-out or cancelled job as a new job",
                    "description": (
                        "The new job has the job's request and dependencies; the jobs "
                        "cancelled because of it come back too, waiting for it. An array "
                        "re-runs only its children that did not complete. 409 when the job "
                        "is live or completed, was already retried, or is a child of an array."
                    ),
                    "parameters": [job_id],
                    "responses": {
                        "201": {"description": "The job that re-runs it", "content": _json("Job")},
                        **_errors("401", "403", "404", "409", "413", "429"),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI 3 description of this API",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            **openapi_objects.paths(_IDEMPOTENCY_KEY),
            **openapi_workflows.paths(_IDEMPOTENCY_KEY),
        },
    }


def _list_parameters() -> list[dict[str, Any]]:
    """The job list's query parameters (``web.api.listing``)."""
    time = {"type": "string", "format": "date-time"}

    def query(name: str, schema: dict[str, Any], doc: str, **more: Any) -> dict[str, Any]:
        return {"name": name, "in": "query", "schema": schema, "description": doc, **more}

    return [
        query(
            "limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                      "default": DEFAULT_LIMIT}, "Jobs per page.",
        ),
        query("cursor", {"type": "string"}, "The next_cursor of the previous page."),
        query("status", {"type": "string", "enum": _STATUSES}, "Only jobs in this status."),
        query("name", {"type": "string"}, "Only jobs of this name (exact)."),
        query("host", {"type": "string"}, "Only jobs on the executor host of this name."),
        query("created_after", time, "Only jobs created after this time (with an offset)."),
        query("created_before", time, "Only jobs created before this time (with an offset)."),
        query(
            "label", {"type": "array", "items": {"type": "string", "pattern": "^[^=]+=.*$"}},
            "key=value; repeat it: every label given must match.",
            style="form", explode=True,
        ),
    ]  # fmt: skip


def _offset_parameters() -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "query",
            "description": f"Bytes already read (the {name} of the previous answer); "
            "default 0, the start.",
            "schema": _OFFSET,
        }
        for name in OFFSET_PARAMETERS
    ]
