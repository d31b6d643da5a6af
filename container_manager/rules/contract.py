"""The submit contract, stated once: each field a job request may carry, its JSON type and rules.

``create_job`` checks its arguments with it, the JSON API reads bodies, ``openapi.py`` prints it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_datetime

from container_manager.conf import setting
from container_manager.rules import array_edges, array_limits
from container_manager.rules import labels as job_labels
from container_manager.rules import status as st
from container_manager.rules.envtext import is_valid_name
from container_manager.rules.secretrefs import value_error

#: The largest value an integer column holds on every supported database.
INT_MAX = 2**31 - 1
#: JSON Schema pattern of text a database can store: no NUL character.
STORABLE = "^[^\\u0000]*$"
#: ... and that is not blank either.
NOT_BLANK = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"


@dataclass(frozen=True)
class Field:
    """One submit field: its JSON type (``string``, ``integer``, ``number``, ``boolean``,
    ``date-time``, ``object``, ``array`` or ``labels``, an object of ``rules.labels``), bounds,
    and one line of documentation."""

    name: str
    kind: str
    doc: str = ""
    max_length: int | None = None
    not_blank: bool = False
    minimum: Any = None
    maximum: Any = None
    unit: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def bounds(self) -> tuple[Any, Any]:
        """The numeric bounds, settings names resolved to their current values."""
        low, high = self.minimum, self.maximum
        return (setting(low) if isinstance(low, str) else low), (
            setting(high) if isinstance(high, str) else high
        )

    def error(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this field, or None."""
        check = _CHECKS[self.kind]
        return check(self, value)

    def schema(self) -> dict[str, Any]:
        """The field as an OpenAPI 3.0 schema."""
        kind = {"date-time": "string", "labels": "object"}.get(self.kind, self.kind)
        # A tolerance is one of two types: its ``extra`` says which.
        out: dict[str, Any] = {} if kind == "tolerance" else {"type": kind}
        if self.kind == "date-time":
            out["format"] = "date-time"
        if self.kind == "string":
            out["pattern"] = NOT_BLANK if self.not_blank else STORABLE
            if self.not_blank:
                out["minLength"] = 1
            if self.max_length:
                out["maxLength"] = self.max_length
        low, high = self.bounds()
        if low is not None:
            out["minimum"] = low
        if high is not None:
            out["maximum"] = high
        if self.doc:
            out["description"] = self.doc
        return {**out, **self.extra}


_NETWORK = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["network_name"],
        "additionalProperties": False,
        "properties": {
            "network_name": {"type": "string", "minLength": 1, "pattern": NOT_BLANK},
            "aliases": {"type": "array", "items": {"type": "string", "pattern": STORABLE}},
        },
    },
}

#: JSON Schema pattern of a percent from 0% to 100%.
_PERCENT = "^(100(\\.0+)?|[0-9]{1,2}(\\.[0-9]+)?)%$"

_MODEL_CHECKED_IMAGE = {"minLength": 1, "maxLength": 500, "pattern": NOT_BLANK}

#: Every field of a submit, in the order the API documents them.
FIELDS: tuple[Field, ...] = (
    # A blank or long image is refused by the model, under this same name.
    Field("docker_image", "string", "Container image.", extra=_MODEL_CHECKED_IMAGE),
    Field("command", "string", "Shell form, or a JSON array as text."),
    Field("name", "string", "Human-readable name.", max_length=200),
    Field("description", "string"),
    Field(
        "memory_limit",
        "integer",
        "MB, within the configured bounds.",
        minimum="MIN_MEMORY_LIMIT_MB",
        maximum="MAX_MEMORY_LIMIT_MB",
        unit=" MB",
    ),  # fmt: skip
    Field("cpu_limit", "number", "Cores.", minimum=0.1, maximum="MAX_CPU_LIMIT", unit=" cores"),
    Field("timeout_seconds", "integer", minimum=1, maximum="MAX_TIMEOUT_SECONDS"),
    Field("working_directory", "string", max_length=500),
    Field("environment_template", "string", "Template name.", max_length=100, not_blank=True),
    Field(
        "environment_vars",
        "object",
        "Variables overlaid on the template; names are letters, digits and _, "
        "not starting with a digit. A value secret:<reference> names a secret "
        "(docs/secrets.md).",
        extra={"additionalProperties": {"type": "string", "pattern": STORABLE}},
    ),  # fmt: skip
    Field("network_configuration", "array", "Networks to join.", extra=_NETWORK),
    Field(
        "host",
        "string",
        "Executor host name; omitted: one is chosen.",
        max_length=100,
        not_blank=True,
    ),  # fmt: skip
    Field("priority", "integer", "Higher runs first.", minimum=-INT_MAX, maximum=INT_MAX),
    Field("max_attempts", "integer", minimum=1, maximum=INT_MAX),
    Field("run_after", "date-time", "Earliest start, RFC 3339 with an offset."),
    Field(
        "depends_on",
        "array",
        "Ids of jobs that must complete first; if one ends failed, timeout or cancelled, "
        "this job ends cancelled. {job, on} waits instead for on = failure (failed or timed "
        "out) or always (any end); if the job ends otherwise, this one ends cancelled. "
        "{job, type: n_to_n} between arrays of one size: child i waits only for child i.",
        extra={
            "items": {
                "oneOf": [
                    {"type": "string", "format": "uuid"},
                    {
                        "type": "object",
                        "required": ["job", "on"],
                        "additionalProperties": False,
                        "properties": {
                            "job": {"type": "string", "format": "uuid"},
                            "on": {"type": "string", "enum": list(st.EDGE_CONDITIONS)},
                        },
                    },
                    {
                        "type": "object",
                        "required": ["job", "type"],
                        "additionalProperties": False,
                        "properties": {
                            "job": {"type": "string", "format": "uuid"},
                            "on": {
                                "type": "string",
                                "enum": list(st.EDGE_CONDITIONS),
                                "default": st.SUCCESS,
                            },
                            "type": {"type": "string", "enum": list(array_edges.EDGE_TYPES)},
                        },
                    },
                ]
            }
        },
    ),  # fmt: skip
    Field(
        "array_size",
        "integer",
        "Submit an array: the job returned is a parent that runs no container, with this many "
        "children whose containers get CM_ARRAY_INDEX and CM_ARRAY_SIZE.",
        minimum=2,
        maximum="ARRAY_MAX_SIZE",
    ),  # fmt: skip
    Field(
        "max_parallel",
        "integer",
        "With array_size: at most this many children launching or running at once (1 to "
        "array_size); the others wait pending, holding no slot.",
        minimum=1,
        maximum="ARRAY_MAX_SIZE",
    ),  # fmt: skip
    Field(
        "tolerated_failures",
        "tolerance",
        "With array_size: how many children may fail or time out, a count or a percent of "
        'array_size ("10%"); one more fails the array at once and cancels the rest. '
        "Omitted: any failure fails the array once every child ended.",
        extra={
            "oneOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": _PERCENT, "maxLength": 8},
            ]
        },
    ),  # fmt: skip
    Field(
        "array_order",
        "string",
        "With array_size: sequential runs child i once child i - 1 completed (one that does "
        "not complete cancels the rest); parallel (the default) runs them side by side.",
        extra={"enum": list(array_edges.ARRAY_ORDERS)},
    ),  # fmt: skip
    Field(
        "labels",
        "labels",
        "Key to value, as Kubernetes labels: a key is [prefix/]name, a name and a value 63 "
        "letters, digits, '-', '_' or '.' at most, starting and ending with a letter or digit. "
        "Filter the job list by them; Docker and Fargate get them as labels and tags.",
        extra={
            "maxProperties": job_labels.MAX_LABELS,
            "additionalProperties": {"type": "string", "maxLength": job_labels.MAX_VALUE_LENGTH},
        },
    ),  # fmt: skip
    Field(
        "returns_result",
        "boolean",
        "The last non-empty line of its stdout is its result: JSON of at most "
        "WORKFLOW_OUTPUT_MAX_BYTES, shown as result and given to each job that depends on it "
        "as CM_INPUT_<NODE>; a completed run without one ends failed. Not on an array.",
    ),  # fmt: skip
)
BY_NAME = {f.name: f for f in FIELDS}
#: Former names of submit fields, and what a body that still sends one is told.
RENAMED = {"image": "renamed docker_image"}


def json_schema() -> dict[str, Any]:
    """The OpenAPI schema of a submit body, with the bounds of the current settings.

    >>> json_schema()["properties"]["memory_limit"]["minimum"]
    6
    """
    return {
        "type": "object",
        "required": ["docker_image"],
        "additionalProperties": False,
        "properties": {f.name: f.schema() for f in FIELDS},
    }


def from_json(payload: dict[str, Any]) -> dict[str, Any]:
    """Check a decoded JSON submit; return it with ``run_after`` as a datetime.

    Raises ``ValidationError`` naming every field at fault (unknown ones included). A
    ``depends_on`` item ``{"job": <id>, "on": <condition>}`` becomes the pair ``(id, condition)``
    that ``create_job`` takes.

    >>> from_json({"docker_image": "x", "timeout_seconds": 1.5})
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: {'timeout_seconds': [...must be an integer.']}
    >>> from_json({"image": "x"})
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: {'image': ['image: renamed docker_image.']}
    """
    errors = {
        shown(name): [f"{shown(name)}: {RENAMED.get(name, 'unknown field')}."]
        for name in payload
        if name not in BY_NAME
    }
    errors.update(_field_errors(payload))
    edges, problem = _edges(payload.get("depends_on"))
    if problem and "depends_on" not in errors:
        errors["depends_on"] = [f"depends_on: {problem}"]
    if errors:
        raise ValidationError(errors)
    values = dict(payload)
    if edges is not None:
        values["depends_on"] = edges
    if values.get("run_after") is not None:
        values["run_after"] = parse_time(values["run_after"])
    return values


def check_arguments(values: dict[str, Any]) -> None:
    """Check the contract's fields among ``create_job`` arguments, and that other text is storable.

    ``run_after`` may also be a ``datetime``; ``None`` means "not given" for every field.
    """
    errors = _field_errors(values)
    if errors:
        raise ValidationError(errors)


#: The submit fields whose bounds the job row checks again (``ContainerJob.clean``, the admin).
ROW_BOUNDED = ("memory_limit", "cpu_limit", "timeout_seconds")


def bound_errors(values: dict[str, Any]) -> dict[str, str]:
    """``{field: message}`` for each number among ``values`` outside its field's bounds.

    A value that is not a number is left to the field's own validation.

    >>> bound_errors({"timeout_seconds": 0, "cpu_limit": None})
    {'timeout_seconds': 'timeout_seconds: must be between 1 and 604800.'}
    """
    errors = {}
    for name, value in values.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            problem = BY_NAME[name].error(value)
            if problem:
                errors[name] = f"{name}: {problem}"
    return errors


def network_error(config: Any) -> str | None:
    """What is wrong with a ``network_configuration`` value, or None.

    >>> network_error([{"network_name": ""}])
    "network_configuration[0]: 'network_name' is empty."
    """
    if config in (None, []):
        return None
    if not isinstance(config, list):
        return "network_configuration: must be a list of {'network_name': ..., 'aliases': [...]}."
    for index, entry in enumerate(config):
        if not isinstance(entry, dict) or not isinstance(entry.get("network_name"), str):
            return f"network_configuration[{index}]: needs a 'network_name' string."
        if not entry["network_name"].strip():
            return f"network_configuration[{index}]: 'network_name' is empty."
        aliases = entry.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            return f"network_configuration[{index}]: 'aliases' must be a list of strings."
    return None


def _field_errors(values: dict[str, Any]) -> dict[str, list[str]]:
    errors = {}
    for name, value in values.items():
        spec = BY_NAME.get(name)
        if value is None or isinstance(value, datetime):
            continue
        if spec is None:
            problem = text_error(value) if isinstance(value, str) else None
        else:
            problem = spec.error(value)
        if problem:
            errors[name] = [f"{name}: {problem}"]
    return errors


def text_error(value: Any) -> str | None:
    """Why a string cannot be stored in a text column, or None."""
    if "\x00" in value:
        return "contains a NUL character, which cannot be stored."
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate, which is not text."
    return None


def _check_string(spec: Field, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, not {_json_type(value)}."
    if spec.not_blank and not value.strip():
        return "must not be blank."
    if spec.max_length and len(value) > spec.max_length:
        return f"must be at most {spec.max_length} characters."
    return text_error(value)


def _check_number(spec: Field, value: Any) -> str | None:
    integer = spec.kind == "integer"
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        return f"must be {'an integer' if integer else 'a number'}."
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number."
    low, high = spec.bounds()
    if (low is not None and value < low) or (high is not None and value > high):
        return f"must be between {low} and {high}{spec.unit}."
    return None


def _check_time(spec: Field, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"must be a date-time string, not {_json_type(value)}."
    try:
        parse_time(value)
    except ValueError as exc:
        return str(exc)
    return None


def _check_object(spec: Field, value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be an object mapping names to strings."
    for key, item in value.items():
        if not is_valid_name(key):
            return (
                f"{shown(key)!r} is not a valid variable name "
                "(letters, digits and _, not starting with a digit)."
            )
        if not isinstance(item, str):
            return f"the value of {key} must be a string, not {_json_type(item)}."
        problem = text_error(item)
        if problem:
            return f"the value of {key} {problem}"
        problem = value_error(key, item)
        if problem:
            return problem
    return None


def _check_array(spec: Field, value: Any) -> str | None:
    if not isinstance(value, list):
        return "must be an array."
    for text in _strings(value):
        problem = text_error(text)
        if problem:
            return problem
    return None


def _check_labels(spec: Field, value: Any) -> str | None:
    return job_labels.labels_error(value)


def _check_boolean(spec: Field, value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, not {_json_type(value)}."


def _check_tolerance(spec: Field, value: Any) -> str | None:
    return array_limits.tolerance_error(value)


_CHECKS = {
    "boolean": _check_boolean,
    "tolerance": _check_tolerance,
    "labels": _check_labels,
    "string": _check_string,
    "integer": _check_number,
    "number": _check_number,
    "date-time": _check_time,
    "object": _check_object,
    "array": _check_array,
}


def parse_time(value: str) -> datetime:
    """An ISO 8601 date-time with a UTC offset, in UTC; ``ValueError`` saying what is wrong if not.

    In UTC because PostgreSQL refuses offsets beyond 15:59 that Python accepts (up to 23:59).

    >>> parse_time("2030-01-19T22:04:28-16:12").isoformat()
    '2030-01-20T14:16:28+00:00'
    >>> parse_time("9999-12-31T23:00:00-05:00")
    Traceback (most recent call last):
    ...
    ValueError: not a real date-time (out of range in UTC).
    """
    try:
        parsed = parse_datetime(value)
    except ValueError as exc:
        raise ValueError(f"not a real date-time ({exc}).") from None
    if parsed is None:
        raise ValueError("not an ISO 8601 date-time.")
    if parsed.tzinfo is None:
        raise ValueError("needs a UTC offset, e.g. 2030-01-01T00:00:00Z.")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("not a real date-time (out of range in UTC).") from None


def _edges(value: Any) -> tuple[list[Any] | None, str | None]:
    """A JSON ``depends_on`` with each ``{job, on}`` object as a pair; or None and the problem.

    An object with a ``type`` (``{"job": …, "on": …, "type": "n_to_n"}``) stays an object.

    >>> _edges(["a", {"job": "b", "on": "always"}, {"job": "c", "type": "n_to_n"}])
    (['a', ('b', 'always'), {'job': 'c', 'type': 'n_to_n'}], None)
    >>> _edges([{"job": "b", "on": "later"}])[1]
    'item 1: must be a job id or {"job": <id>, "on": "success" | "failure" | "always"}.'
    """
    if not isinstance(value, list):
        return None, None
    edges: list[Any] = []
    for number, item in enumerate(value, 1):
        if not isinstance(item, dict):
            edges.append(item)
            continue
        if "type" in item:
            problem = array_edges.typed_item_error(item)
            if problem:
                return None, f"item {number}: {problem}"
            edges.append(dict(item))
            continue
        if set(item) != {"job", "on"} or item["on"] not in st.EDGE_CONDITIONS:
            shape = " | ".join(f'"{c}"' for c in st.EDGE_CONDITIONS)
            return None, f'item {number}: must be a job id or {{"job": <id>, "on": {shape}}}.'
        edges.append((item["job"], item["on"]))
    return edges, None


def _strings(value: Any) -> Iterator[str]:
    """Every string inside ``value``, keys included; iterative: depth cannot exhaust the stack."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def shown(name: str) -> str:
    """A field name fit to be echoed: at most 40 characters, escapes for what is not text."""
    text = name if len(name) <= 40 else name[:40] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
