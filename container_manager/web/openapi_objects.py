"""The OpenAPI paths and schemas of the stored objects a caller manages: schedules, webhooks.

``openapi.schema`` merges them into the one document; the tests validate every answer.
"""

from __future__ import annotations

from typing import Any

from container_manager.models.webhooks import EVENTS
from container_manager.rules import contract
from container_manager.rules.secrets import MASK
from container_manager.web.openapi_refs import error_responses as _errors
from container_manager.web.openapi_refs import json_content as _json

_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {**_TIME, "nullable": True}

_SCHEDULE_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "maxLength": 200},
    "cron": {
        "type": "string",
        "description": "Five fields, or @hourly, @daily, @weekly, @monthly.",
    },
    "timezone": {"type": "string", "description": "IANA time zone name (default UTC)."},
    "enabled": {"type": "boolean", "description": "Disabled schedules make no jobs."},
    "overlap": {"type": "string", "enum": ["allow", "skip", "replace"]},
    "catchup": {"type": "integer", "minimum": 0, "maximum": 100},
    "job_name": {"type": "string", "description": "Name of the jobs; blank: the schedule's."},
    "docker_image": {"type": "string"},
    "command": {"type": "string"},
    "host": {"type": "string", "nullable": True, "description": "Host name; none: any host."},
    "memory_limit": {"type": "integer", "nullable": True},
    "cpu_limit": {"type": "number", "nullable": True},
    "timeout_seconds": {"type": "integer"},
    "environment_template": {"type": "string", "nullable": True},
    "environment_vars": {"type": "object", "additionalProperties": {"type": "string"}},
}

_SCHEDULE = {
    "type": "object",
    "required": [*_SCHEDULE_FIELDS, "id", "next_run_at", "last_run_at", "last_outcome"],
    "properties": {
        "id": {"type": "integer"},
        **_SCHEDULE_FIELDS,
        "environment_vars": {
            **_SCHEDULE_FIELDS["environment_vars"],
            "description": f"The variables' names, every value shown as {MASK} (the API never "
            "answers environment values); in a PATCH, a value sent as the mask keeps the "
            "stored one.",
        },
        "next_run_at": {**_NULLABLE_TIME, "description": "Empty while disabled."},
        "last_run_at": _NULLABLE_TIME,
        "last_outcome": {"type": "string", "description": "The job it made, or why none."},
        "last_job": {"type": "string", "format": "uuid", "nullable": True},
        "created_at": _TIME,
        "updated_at": _TIME,
    },
}

_WEBHOOK_FIELDS: dict[str, Any] = {
    "url": {
        "type": "string",
        "maxLength": 1000,
        "description": "http or https; public addresses only, unless WEBHOOK_ALLOWED_NETWORKS "
        "allows a network.",
    },
    "events": {
        "type": "array",
        "minItems": 1,
        "items": {"type": "string", "enum": list(EVENTS)},
        "description": "Events sent here (default: all).",
    },
    "active": {"type": "boolean", "description": "Inactive endpoints get no deliveries."},
}

_WEBHOOK = {
    "type": "object",
    "required": ["id", "url", "events", "active", "secret", "created_at"],
    "properties": {
        "id": {"type": "integer"},
        **_WEBHOOK_FIELDS,
        "secret": {
            "type": "string",
            "description": "Signs each delivery (HMAC-SHA256). Shown in the create's 201 and "
            f"in a rotation's answer only; {MASK} everywhere else.",
        },
        "created_at": _TIME,
    },
}


def schemas() -> dict[str, Any]:
    """The component schemas of schedules and webhook endpoints, by name."""
    submit = contract.json_schema()["properties"]
    job_fields = {"command", "memory_limit", "cpu_limit", "timeout_seconds"}
    body = {
        **_SCHEDULE_FIELDS,
        **{name: submit[name] for name in job_fields},
        "docker_image": submit["docker_image"],
        "job_name": submit["name"],
        "environment_template": {**submit["environment_template"], "nullable": True},
        "environment_vars": {**submit["environment_vars"], "nullable": True},
        "memory_limit": {**submit["memory_limit"], "nullable": True},
        "cpu_limit": {**submit["cpu_limit"], "nullable": True},
    }
    return {
        "Schedule": _SCHEDULE,
        "ScheduleCreate": _body(body, required=["name", "cron", "docker_image"]),
        "ScheduleUpdate": _body(body),
        "Webhook": _WEBHOOK,
        "WebhookCreate": _body(_WEBHOOK_FIELDS, required=["url"]),
        "WebhookUpdate": _body(_WEBHOOK_FIELDS),
    }


def paths(idempotency_key: dict[str, Any]) -> dict[str, Any]:
    """The paths of schedules and webhook endpoints; ``idempotency_key`` is the header's spec."""
    schedule_id = _id("schedule_id")
    webhook_id = _id("webhook_id")
    return {
        "/schedules/": {
            "get": _list(
                "listSchedules", "The schedules, by name, with their next run", "Schedule"
            ),
            "post": {
                "operationId": "createSchedule",
                "summary": "Create a schedule",
                "parameters": [idempotency_key],
                "requestBody": {"required": True, "content": _json("ScheduleCreate")},
                "responses": {
                    "200": {
                        "description": _REPLAYED.format("schedule"),
                        "content": _json("Schedule"),
                    },
                    "201": {"description": "Created", "content": _json("Schedule")},
                    **_errors("400", "401", "403", "409", "413", "429"),
                },
            },
        },
        "/schedules/{schedule_id}/": _one(schedule_id, "Schedule", "schedule"),
        "/schedules/{schedule_id}/run/": {
            "post": {
                "operationId": "runSchedule",
                "summary": "Make one job of the schedule now, as its owner and overlap allow",
                "parameters": [schedule_id, idempotency_key],
                "responses": {
                    "200": {"description": _REPLAYED.format("job"), "content": _json("Job")},
                    "201": {"description": "The job made", "content": _json("Job")},
                    "409": {
                        "description": "No job was made (overlap skip, an owner who may not "
                        "submit, a job refused); the reason. Or a key used for another request",
                        "content": _json("Error"),
                    },
                    **_errors("400", "401", "403", "404", "413", "429"),
                },
            }
        },
        "/webhooks/": {
            "get": _list("listWebhooks", "The webhook endpoints, by URL", "Webhook"),
            "post": {
                "operationId": "createWebhook",
                "summary": "Create a webhook endpoint; the answer holds its secret, this once",
                "requestBody": {"required": True, "content": _json("WebhookCreate")},
                "responses": {
                    "201": {"description": "Created, secret shown", "content": _json("Webhook")},
                    **_errors("400", "401", "403", "413", "429"),
                },
            },
        },
        "/webhooks/{webhook_id}/": _one(webhook_id, "Webhook", "webhook endpoint"),
        "/webhooks/{webhook_id}/rotate/": {
            "post": {
                "operationId": "rotateWebhookSecret",
                "summary": "Give the endpoint a new secret; the answer holds it, this once",
                "parameters": [webhook_id],
                "responses": {
                    "200": {"description": "Rotated, secret shown", "content": _json("Webhook")},
                    **_errors("401", "403", "404", "409", "413", "429"),
                },
            }
        },
    }


_REPLAYED = "A retry with the same Idempotency-Key and body: the {} the first call made"


def _one(id_parameter: dict[str, Any], name: str, what: str) -> dict[str, Any]:
    """GET, PATCH and DELETE of one object of schema ``name``."""
    return {
        "get": {
            "operationId": f"get{name}",
            "summary": f"A {what}",
            "parameters": [id_parameter],
            "responses": {
                "200": {"description": f"The {what}", "content": _json(name)},
                **_errors("401", "403", "404", "429"),
            },
        },
        "patch": {
            "operationId": f"update{name}",
            "summary": f"Change the fields the body names of a {what}",
            "parameters": [id_parameter],
            "requestBody": {"required": True, "content": _json(f"{name}Update")},
            "responses": {
                "200": {"description": f"The changed {what}", "content": _json(name)},
                **_errors("400", "401", "403", "404", "413", "429"),
            },
        },
        "delete": {
            "operationId": f"delete{name}",
            "summary": f"Delete a {what}",
            "parameters": [id_parameter],
            "responses": {
                "204": {"description": "Deleted"},
                **_errors("401", "403", "404", "413", "429"),
            },
        },
    }


def _list(operation_id: str, summary: str, name: str) -> dict[str, Any]:
    key = f"{name.lower()}s"
    listed = {
        "type": "object",
        "required": [key],
        "properties": {key: {"type": "array", "items": _ref(name)}},
    }
    return {
        "operationId": operation_id,
        "summary": summary,
        "responses": {
            "200": {"description": summary, "content": {"application/json": {"schema": listed}}},
            **_errors("401", "403", "429"),
        },
    }


def _body(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """A request body of ``properties``: unknown fields refused; a PATCH's names any of them."""
    out: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }
    return {**out, "required": required} if required else out


def _id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}
