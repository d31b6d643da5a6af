"""The OpenAPI 3.0 description of the JSON API (served at ``api/openapi.json``).

Kept beside ``api.py``; the tests validate the document and every response against it.
"""

from __future__ import annotations

from typing import Any

from container_manager import status as st

_NULLABLE_TIME = {"type": "string", "format": "date-time", "nullable": True}

_JOB = {
    "type": "object",
    "required": ["id", "name", "status", "image", "host", "attempts", "created_at", "links"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "name": {"type": "string"},
        "status": {"type": "string", "enum": [value for value, _ in st.STATUS_CHOICES]},
        "image": {"type": "string"},
        "command": {"type": "string"},
        "host": {"type": "string", "description": "Name of the executor host."},
        "exit_code": {"type": "integer", "nullable": True},
        "attempts": {"type": "integer", "minimum": 0},
        "last_error": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": _NULLABLE_TIME,
        "completed_at": _NULLABLE_TIME,
        "duration_seconds": {"type": "number", "nullable": True},
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

_SUBMIT = {
    "type": "object",
    "required": ["image"],
    "additionalProperties": False,
    "properties": {
        "image": {"type": "string", "minLength": 1, "maxLength": 500},
        "command": {"type": "string", "description": "Shell form, or a JSON array as text."},
        "name": {"type": "string", "maxLength": 200},
        "description": {"type": "string"},
        "memory_limit": {"type": "integer", "description": "MB, within the configured bounds."},
        "cpu_limit": {"type": "number", "minimum": 0.1, "maximum": 32},
        "timeout_seconds": {"type": "integer", "minimum": 1},
        "working_directory": {"type": "string"},
        "environment_template": {"type": "string", "description": "Template name."},
        "environment_vars": {"type": "object", "additionalProperties": {"type": "string"}},
        "network_configuration": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["network_name"],
                "properties": {
                    "network_name": {"type": "string"},
                    "aliases": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        "host": {"type": "string", "description": "Executor host name; omitted: one is chosen."},
        "priority": {"type": "integer"},
        "max_attempts": {"type": "integer", "minimum": 1},
        "run_after": {"type": "string", "format": "date-time"},
        "depends_on": {
            "type": "array",
            "items": {"type": "string", "format": "uuid"},
            "description": (
                "Ids of jobs that must complete first; if one ends failed, timeout or "
                "cancelled, this job ends cancelled."
            ),
        },
        "array_size": {
            "type": "integer",
            "minimum": 2,
            "maximum": 10000,
            "description": (
                "Submit an array: the job returned is a parent that runs no container, with "
                "this many children whose containers get CM_ARRAY_INDEX and CM_ARRAY_SIZE."
            ),
        },
    },
}

_LOGS = {
    "type": "object",
    "required": ["id", "status", "stdout", "stderr", "clean_output", "truncated"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "status": {"type": "string"},
        "stdout": {"type": "string"},
        "stderr": {"type": "string"},
        "clean_output": {"type": "string"},
        "truncated": {"type": "boolean"},
    },
}

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "fields": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}


def schema(server_url: str = "/cm/api") -> dict[str, Any]:
    """The OpenAPI document, its one server being ``server_url``.

    >>> sorted(schema()["paths"])
    ['/jobs/', '/jobs/{job_id}/', '/jobs/{job_id}/cancel/', '/jobs/{job_id}/logs/']
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
            "description": "Submit container jobs, read their status and logs, cancel them.",
        },
        "servers": [{"url": server_url}],
        "security": [{"apiToken": []}],
        "components": {
            "securitySchemes": {"apiToken": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Job": _JOB, "JobSubmit": _SUBMIT, "JobLogs": _LOGS, "Error": _ERROR},
            "responses": {
                "Error": {"description": "Refused or invalid", "content": _json("Error")},
            },
        },
        "paths": {
            "/jobs/": {
                "get": {
                    "summary": "The latest jobs",
                    "parameters": [{"name": "status", "in": "query", "schema": {"type": "string"}}],
                    "responses": {
                        "200": {
                            "description": "Jobs, newest first",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["jobs"],
                                        "properties": {
                                            "jobs": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Job"},
                                            }
                                        },
                                    }
                                }
                            },
                        },
                        **_errors("401", "403"),
                    },
                },
                "post": {
                    "summary": "Submit a job",
                    "requestBody": {"required": True, "content": _json("JobSubmit")},
                    "responses": {
                        "201": {"description": "Submitted", "content": _json("Job")},
                        **_errors("400", "401", "403"),
                    },
                },
            },
            "/jobs/{job_id}/": {
                "get": {
                    "summary": "A job's status",
                    "parameters": [job_id],
                    "responses": {
                        "200": {"description": "The job", "content": _json("Job")},
                        **_errors("401", "403", "404"),
                    },
                }
            },
            "/jobs/{job_id}/logs/": {
                "get": {
                    "summary": "A job's logs",
                    "parameters": [job_id],
                    "responses": {
                        "200": {"description": "Stored logs", "content": _json("JobLogs")},
                        **_errors("401", "403", "404"),
                    },
                }
            },
            "/jobs/{job_id}/cancel/": {
                "post": {
                    "summary": "Cancel a job",
                    "parameters": [job_id],
                    "responses": {
                        "202": {"description": "Cancel requested", "content": _json("Job")},
                        **_errors("401", "403", "404", "409"),
                    },
                }
            },
        },
    }


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: {"$ref": "#/components/responses/Error"} for code in codes}
