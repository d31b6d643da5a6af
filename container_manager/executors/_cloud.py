"""Helpers shared by the executors: find-or-start launches, lazy clients, log text, log waits.

Imports no cloud SDK; each executor module imports its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from container_manager.conf import setting
from container_manager.executors.exceptions import ExecutorError
from container_manager.executors.types import ExecutionState, LaunchRequest
from container_manager.rules.logtext import cap_log

logger = logging.getLogger(__name__)

#: Environment variable carrying the launch key, so a retried launch can find its execution.
LAUNCH_KEY_ENV = "CM_LAUNCH_KEY"
#: Default seconds a harvest waits, after an execution ended, for its logs to be ingested.
DEFAULT_LOG_WAIT_SECONDS = 10.0

T = TypeVar("T")


class FindOrStart:
    """``launch_job`` and ``cleanup`` for platforms that find an execution by its launch key.

    The executor implements ``find_execution(key, image)`` (the id of an execution this
    attempt of a job naming ``image`` already started, or None) and ``start_execution(request)``; a
    launch retried after a crash then returns the first execution, never a second.
    The platform keeps (and prunes) finished executions itself, so ``cleanup``
    only stops one that still runs.
    """

    def launch_job(self, request: LaunchRequest) -> str:
        """Return the attempt's execution, starting it only if none exists yet."""
        key = request.launch_key
        existing = self.find_execution(key, request.image)
        if existing:
            logger.info("launch of %s found execution %s already there", key, existing)
            return existing
        execution_id = self.start_execution(request)
        logger.info("launched %s as %s", key, execution_id)
        return execution_id

    def find_launched(self, request: LaunchRequest) -> str | None:
        """The attempt's execution found by its launch key; never starts one."""
        return self.find_execution(request.launch_key, request.image)

    def cleanup(self, execution_id: str) -> bool:
        """Stop the execution if it still runs; the platform removes finished ones."""
        if self.check_status(execution_id) == ExecutionState.RUNNING:
            self.stop(execution_id)
        return True


def environment(request: LaunchRequest) -> dict[str, str]:
    """The request's environment plus ``CM_LAUNCH_KEY``, which finds the execution again.

    >>> from container_manager.executors.types import LaunchRequest
    >>> environment(LaunchRequest("j", 1, "k-1", "img", environment={"A": "1"}))
    {'A': '1', 'CM_LAUNCH_KEY': 'k-1'}
    """
    return {**request.environment, LAUNCH_KEY_ENV: request.launch_key}


#: ``classify(action, exc)``: the executor error an SDK exception means, or None to let it through.
Classifier = Callable[[str, Exception], ExecutorError | None]


@contextmanager
def sdk_errors(action: str, classify: Classifier) -> Iterator[None]:
    """The one way SDK errors are translated: what ``classify`` returns is raised instead.

    Executor errors pass unchanged; an exception ``classify`` does not know propagates.

    >>> def classify(action, exc):
    ...     return ExecutorError(f"{action}: {exc}") if isinstance(exc, OSError) else None
    >>> with sdk_errors("ping", classify):
    ...     raise OSError("reset")
    Traceback (most recent call last):
    ...
    container_manager.executors.exceptions.ExecutorError: ping: reset
    """
    try:
        yield
    except ExecutorError:
        raise
    except Exception as exc:
        error = classify(action, exc)
        if error is None:
            raise
        raise error from exc


def pull_failure(image: str, detail: str, host: str = "") -> str:
    """Why a launch failed when the platform could not pull ``image``: it names the image.

    >>> pull_failure("no-such-image:2", "manifest unknown", host="docker-1")
    "image 'no-such-image:2' could not be pulled on host 'docker-1': manifest unknown"
    """
    where = f" on host {host!r}" if host else ""
    return f"image {image!r} could not be pulled{where}: {detail}"


class LazyClients:
    """SDK clients built on first use, one per kind, shared by the threads of a process."""

    def __init__(self, build: Callable[[str], Any]):
        self._build = build
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, kind: str) -> Any:
        """The client of ``kind``, built once."""
        with self._lock:
            if kind not in self._clients:
                self._clients[kind] = self._build(kind)
            return self._clients[kind]


def log_text(lines: Iterable[tuple[datetime | None, str]]) -> str:
    """Join ``(timestamp, message)`` lines as ``"<RFC 3339> message"``, capped at LOG_MAX_BYTES.

    >>> log_text([(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "hello")])
    '2024-01-02T03:04:05.000000Z hello\\n'
    """
    out = []
    for stamp, message in lines:
        text = message if message.endswith("\n") else message + "\n"
        out.append(f"{_rfc3339(stamp)} {text}" if stamp else text)
    return cap_log("".join(out), int(setting("LOG_MAX_BYTES")))


def settled_read(read: Callable[[], T], ended_at: datetime | None, wait_seconds: float) -> T:
    """Read logs, re-reading until two reads agree or ``wait_seconds`` after the end passed.

    Cloud log stores ingest lines some seconds after they were written; an
    execution that ended long ago is read once.
    """
    deadline = (ended_at or datetime.now(UTC)).timestamp() + wait_seconds
    result = read()
    while time.time() < deadline:
        time.sleep(max(0.0, min(1.0, deadline - time.time())))
        again = read()
        if again == result and again:
            return again
        result = again
    return result


def _rfc3339(stamp: datetime) -> str:
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
