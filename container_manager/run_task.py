"""Run one task inside its container: ``python -m container_manager.run_task``.

Reads the payload from ``CM_TASK_PAYLOAD``, calls the task, and writes one marked result line.
"""

from __future__ import annotations

import os
import sys
import traceback
from datetime import datetime
from typing import Any

from container_manager.rules import taskwire

#: Exit code when the payload is missing or unreadable (the task did not run).
EXIT_BAD_PAYLOAD = 2
#: Exit code when the task raised (or returned something that is not JSON).
EXIT_TASK_FAILED = 1
#: Exit code when the task was interrupted (``KeyboardInterrupt``), as a shell reports SIGINT.
EXIT_INTERRUPTED = 130


def main(environ: dict[str, str] | None = None) -> int:
    """Run the task the environment names and return the process's exit code.

    The return value goes to stdout as the last line (``taskwire.result_line``);
    a raised exception goes to stderr, as a traceback and one marked line with
    its type and message (``ValueError: bad input``), and the exit code is 1
    (130 for ``KeyboardInterrupt``, reported the same way). A payload that
    cannot be read exits with 2. The database is never touched: the task's
    result travels in the logs.
    """
    environ = os.environ if environ is None else environ
    try:
        payload = taskwire.decode_payload(environ.get(taskwire.PAYLOAD_ENV, ""))
    except taskwire.PayloadError as exc:
        _report(exc, str(exc))
        return EXIT_BAD_PAYLOAD
    try:
        value = _call(payload, environ)
        line = taskwire.result_line(value)
    except BaseException as exc:  # noqa: BLE001 - every failure of the task is its result
        _report(exc, "".join(traceback.format_exception(exc)))
        return EXIT_INTERRUPTED if isinstance(exc, KeyboardInterrupt) else EXIT_TASK_FAILED
    sys.stdout.flush()
    sys.stdout.write("\n" + line + "\n")
    sys.stdout.flush()
    return 0


def _call(payload: dict[str, Any], environ: dict[str, str]) -> Any:
    """Set Django up when the image names settings, import the task and call it."""
    if environ.get("DJANGO_SETTINGS_MODULE"):
        import django

        django.setup()
    from django.utils.module_loading import import_string

    from container_manager.tasks.compat import Task, normalize_json

    task = import_string(payload["task"])
    if not isinstance(task, Task):
        raise TypeError(f"{payload['task']!r} is not a task (decorate it with @task)")
    args = payload["args"]
    if payload["context"]:
        args = [_context(task, payload, environ), *args]
    return normalize_json(task.call(*args, **payload["kwargs"]))


def _context(task: Any, payload: dict[str, Any], environ: dict[str, str]) -> Any:
    """The ``TaskContext`` a ``takes_context`` task receives: a view built from the payload."""
    from container_manager.tasks.compat import TaskContext, TaskResult, TaskResultStatus

    now = datetime.now().astimezone()
    attempt = _attempt(environ)
    result = TaskResult(
        task=task,
        id=payload["id"],
        status=TaskResultStatus.RUNNING,
        enqueued_at=None,
        started_at=now,
        finished_at=None,
        last_attempted_at=now,
        args=payload["args"],
        kwargs=payload["kwargs"],
        backend=payload["backend"],
        errors=[],
        worker_ids=[f"attempt-{n}" for n in range(1, attempt + 1)],
    )
    return TaskContext(task_result=result)


def _attempt(environ: dict[str, str]) -> int:
    """The launch attempt, from ``CM_LAUNCH_KEY`` (``<job hex>-<attempt>``) where platforms set it.

    >>> _attempt({"CM_LAUNCH_KEY": "0f3a-2"}), _attempt({})
    (2, 1)
    """
    _, _, number = environ.get("CM_LAUNCH_KEY", "").rpartition("-")
    return int(number) if number.isdigit() and int(number) > 0 else 1


def _report(exc: BaseException, text: str) -> None:
    """Write ``text`` and the marked line with the exception's path, text and type-and-message.

    The message is the line ``traceback`` ends with (``ValueError: bad input``); the harvest
    bounds it (``TASK_ERROR_MAX_CHARS``) and puts it in the job's ``last_error``.
    """
    module, name = type(exc).__module__, type(exc).__qualname__
    path = f"{module}.{name}"
    shown = name if module in ("builtins", "__main__") else path
    message = f"{shown}: {exc}" if str(exc) else shown
    sys.stdout.flush()
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.write(taskwire.error_line(path, text, message) + "\n")
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
