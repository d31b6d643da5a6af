"""Helpers shared by the cloud executors: config checks, command parsing, log text, log waits.

Imports no cloud SDK; each executor module imports its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from container_manager.conf import setting
from container_manager.executors.exceptions import ExecutorConfigurationError, ExecutorError
from container_manager.logtext import cap_log

if TYPE_CHECKING:
    from container_manager.models import ContainerJob

logger = logging.getLogger(__name__)

#: Environment variable carrying the launch key, so a retried launch can find its execution.
LAUNCH_KEY_ENV = "CM_LAUNCH_KEY"
#: Default seconds a harvest waits, after an execution ended, for its logs to be ingested.
DEFAULT_LOG_WAIT_SECONDS = 10.0

T = TypeVar("T")


class FindOrStart:
    """``launch_job`` for platforms where an attempt's execution can be found by its launch key.

    The executor implements ``find_execution(key)`` (the id of an execution this
    attempt already started, or None) and ``start_execution(job, key)``; a
    launch retried after a crash then returns the first execution, never a second.
    """

    def launch_job(self, job: ContainerJob) -> tuple[bool, str]:
        """Return the attempt's execution, starting it only if none exists yet."""
        key = self.launch_key(job)
        try:
            existing = self.find_execution(key)
            if existing:
                logger.info("launch of %s found execution %s already there", key, existing)
                return True, existing
            execution_id = self.start_execution(job, key)
        except ExecutorError as exc:
            if exc.retryable:
                raise
            return False, str(exc)
        logger.info("launched %s as %s", key, execution_id)
        return True, execution_id


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


#: Keys every cloud executor accepts: ``prices`` is read by ``container_manager.cost``.
SHARED_SCHEMA: dict[str, tuple[tuple[type, ...], bool]] = {"prices": ((dict,), False)}


def validate_config(
    config: dict[str, Any],
    schema: dict[str, tuple[tuple[type, ...], bool]],
    platform: str,
) -> None:
    """Check ``config`` against ``{key: (types, required)}``; raise naming the first bad key.

    >>> validate_config({"a": 1}, {"a": ((int,), True), "b": ((str,), True)}, "demo")
    Traceback (most recent call last):
    ...
    container_manager.executors.exceptions.ExecutorConfigurationError: \
executor_config['b']: required by the demo executor
    """
    schema = {**schema, **SHARED_SCHEMA}
    for key, value in config.items():
        if key not in schema:
            known = ", ".join(sorted(schema))
            raise ExecutorConfigurationError(
                f"executor_config[{key!r}]: unknown key for the {platform} executor "
                f"(known: {known})",
                key=key,
            )
        types = schema[key][0]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            raise ExecutorConfigurationError(
                f"executor_config[{key!r}]: expected {names}, got {type(value).__name__}",
                key=key,
            )
    for key, (_types, required) in schema.items():
        if required and config.get(key) in (None, "", []):
            raise ExecutorConfigurationError(
                f"executor_config[{key!r}]: required by the {platform} executor", key=key
            )


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
