"""What a task job's container is told and what it answers: the payload and the marked lines.

Standard library only: the runner in the container imports it without a database or the framework.
"""

from __future__ import annotations

import json
from typing import Any

#: The environment variable that carries a task's payload; its value is always masked.
PAYLOAD_ENV = "CM_TASK_PAYLOAD"
#: Starts the one line of stdout that holds the task's JSON return value.
RESULT_MARKER = "::container-manager-task-result::"
#: Starts the one line of stderr that holds the raised exception's type and traceback.
ERROR_MARKER = "::container-manager-task-error::"
#: The payload format this code writes and reads.
VERSION = 1


class PayloadError(ValueError):
    """A payload that cannot be read: not JSON, or a field missing or of the wrong type."""


def encode_payload(
    *,
    task_path: str,
    backend: str,
    queue: str,
    args: list,
    kwargs: dict,
    takes_context: bool,
    result_id: str,
    task_fields: dict | None = None,
) -> str:
    """The payload as compact JSON text, ready for the job's environment.

    ``task_fields`` (stored as ``"fields"``) are the enqueued task's other
    settings; the runner ignores them, ``get_result`` rebuilds the task with them.

    >>> encode_payload(task_path="app.tasks.add", backend="default", queue="default",
    ...                args=[2, 3], kwargs={}, takes_context=False, result_id="r1",
    ...                task_fields={"priority": 5})
    '{"v":1,"task":"app.tasks.add","backend":"default","queue":"default","args":[2,3],\
"kwargs":{},"context":false,"id":"r1","fields":{"priority":5}}'
    """
    document = {
        "v": VERSION,
        "task": task_path,
        "backend": backend,
        "queue": queue,
        "args": args,
        "kwargs": kwargs,
        "context": takes_context,
        "id": result_id,
    }
    if task_fields:
        document["fields"] = task_fields
    return json.dumps(document, separators=(",", ":"), allow_nan=False)


def decode_payload(text: str) -> dict[str, Any]:
    """Read a payload written by ``encode_payload``; ``PayloadError`` names what is wrong.

    >>> decode_payload('{"v":1,"task":"m.f","backend":"default","queue":"default","args":[],'
    ...                '"kwargs":{},"context":false,"id":"r1"}')["task"]
    'm.f'
    >>> decode_payload('{"v":1}')
    Traceback (most recent call last):
    ...
    container_manager.rules.taskwire.PayloadError: CM_TASK_PAYLOAD: 'task' must be a str
    """
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise PayloadError(f"{PAYLOAD_ENV}: not JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("v") != VERSION:
        raise PayloadError(f'{PAYLOAD_ENV}: expected a JSON object with "v": {VERSION}')
    for field, kind in (("task", str), ("backend", str), ("queue", str), ("args", list),
                        ("kwargs", dict), ("context", bool), ("id", str)):  # fmt: skip
        if not isinstance(document.get(field), kind):
            raise PayloadError(f"{PAYLOAD_ENV}: {field!r} must be a {kind.__name__}")
    # Optional: absent when no field was stored, and from payloads written before it existed.
    if not isinstance(document.get("fields", {}), dict):
        raise PayloadError(f"{PAYLOAD_ENV}: 'fields' must be a dict")
    return document


def result_line(value: Any) -> str:
    """The marked stdout line for a return value (``TypeError``/``ValueError`` if not JSON).

    >>> result_line({"sum": 5})
    '::container-manager-task-result:: {"sum": 5}'
    """
    return f"{RESULT_MARKER} {json.dumps(value, allow_nan=False)}"


def error_line(exception_class_path: str, traceback: str, message: str = "") -> str:
    """The marked stderr line for a raised exception; ``message`` is its type and text.

    >>> error_line("builtins.ValueError", "Traceback ...", "ValueError: bad input")
    '::container-manager-task-error:: {"exception_class_path": "builtins.ValueError", \
"traceback": "Traceback ...", "message": "ValueError: bad input"}'
    """
    document = {"exception_class_path": exception_class_path, "traceback": traceback}
    if message:
        document["message"] = message
    return f"{ERROR_MARKER} {json.dumps(document)}"


def read_result(stdout: str) -> tuple[bool, Any]:
    """``(True, value)`` from the last marked line of ``stdout``; ``(False, None)`` without one.

    >>> read_result("working\\n::container-manager-task-result:: 5\\n")
    (True, 5)
    >>> read_result("no marker here")
    (False, None)
    """
    return _last_marked(stdout, RESULT_MARKER)


def read_error(stderr: str) -> dict[str, str] | None:
    """The exception the runner reported on ``stderr``, or None when there is none.

    >>> read_error(error_line("builtins.KeyError", "Traceback: KeyError"))["exception_class_path"]
    'builtins.KeyError'
    """
    found, document = _last_marked(stderr, ERROR_MARKER)
    if not found or not isinstance(document, dict):
        return None
    path, traceback = document.get("exception_class_path"), document.get("traceback")
    if not isinstance(path, str) or not isinstance(traceback, str):
        return None
    return {"exception_class_path": path, "traceback": traceback}


def read_error_message(text: str, limit: int) -> str:
    """The reported exception's type and message (at most ``limit`` characters), or "".

    Read from the marked line's ``message``; a line written before it had one gives the last
    line of its traceback. Only the task's own exception text: nothing else of the logs.

    >>> read_error_message(error_line("app.Bad", "Traceback\\napp.Bad: no", "app.Bad: no"), 80)
    'app.Bad: no'
    >>> read_error_message(error_line("builtins.ValueError", "Traceback\\nValueError: x\\n"), 80)
    'ValueError: x'
    >>> read_error_message(error_line("builtins.ValueError", "", "ValueError: " + "a" * 50), 20)
    'ValueError: aaaaaaa…'
    >>> read_error_message("no marker", 80)
    ''
    """
    found, document = _last_marked(text, ERROR_MARKER)
    if not found or not isinstance(document, dict):
        return ""
    message = document.get("message")
    if not isinstance(message, str) or not message.strip():
        traceback = document.get("traceback")
        lines = traceback.strip().splitlines() if isinstance(traceback, str) else []
        message = lines[-1] if lines else ""
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: max(limit - 1, 0)] + "…"


def _last_marked(text: str, marker: str) -> tuple[bool, Any]:
    start = (text or "").rfind(marker)
    if start < 0:
        return False, None
    line = text[start + len(marker) :].split("\n", 1)[0].strip()
    try:
        return True, json.loads(line)
    except ValueError:
        return False, None
