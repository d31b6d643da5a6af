"""The executor interface: what the steps ask of every container platform.

An executor speaks jobs to one ``ExecutorHost``; it never changes a job's status
and never saves a job. The steps (``container_manager.steps``) do that.
"""

from __future__ import annotations

import json
import shlex
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from container_manager.conf import setting
from container_manager.executors.exceptions import ExecutorError

if TYPE_CHECKING:
    from container_manager.models import ContainerJob, ExecutorHost

#: What ``check_status`` answers.
RUNNING = "running"
EXITED = "exited"
FAILED = "failed"
NOT_FOUND = "not-found"

#: Labels (or tags) every execution carries, so it can be found again after a crash.
LABEL_MANAGED = "container_manager.managed"
LABEL_JOB_ID = "container_manager.job_id"
LABEL_ATTEMPT = "container_manager.attempt"
#: Which deployment (``CONTAINER_MANAGER["INSTANCE"]``) owns the execution.
LABEL_INSTANCE = "container_manager.instance"


def parse_command(command: str) -> list[str] | None:
    """Split a job's command: shell form like a shell would, a leading ``[`` as a JSON array.

    >>> parse_command("sh -c 'echo hi'")
    ['sh', '-c', 'echo hi']
    >>> parse_command('["echo", "a b"]')
    ['echo', 'a b']
    >>> parse_command("  ") is None
    True
    """
    text = (command or "").strip()
    if not text:
        return None
    if not text.startswith("["):
        try:
            return shlex.split(text)
        except ValueError as exc:
            raise ExecutorError(f"command cannot be split: {exc}", retryable=False) from exc
    try:
        parts = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExecutorError(f"command is not a valid JSON array: {exc}", retryable=False) from exc
    if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
        raise ExecutorError("command JSON must be an array of strings", retryable=False)
    return parts


def record_platform_times(job: ContainerJob, times: dict[str, Any]) -> None:
    """Keep the platform's own timestamps of an execution on ``job`` for the harvest step.

    ``times`` maps the platform's names to datetimes; unknown ones (None) are left out.
    They go to ``job.executor_metadata["platform_times"]`` as ISO 8601 text.
    """
    known = {name: at.isoformat() for name, at in times.items() if at is not None}
    job.executor_metadata = {
        **(getattr(job, "executor_metadata", None) or {}),
        "platform_times": known,
    }


class ContainerExecutor(ABC):
    """Run a job's container on one platform.

    Subclasses implement the five abstract methods. ``launch_job`` must be
    idempotent per launch key (job id + attempt): called again for the same
    attempt, it returns the execution that is already there instead of
    starting a second one.
    """

    #: Capabilities, overridden truthfully by each platform.
    capabilities: dict[str, bool] = {
        "supports_resource_limits": False,
        "supports_networking": False,
        "supports_persistent_storage": False,
        "supports_secrets": False,
        "supports_gpu": False,
        "supports_scaling": False,
        "supports_idempotent_launch": False,
        "supports_resource_usage": False,
    }

    def __init__(self, host: ExecutorHost):
        self.host = host
        self.config: dict[str, Any] = dict(host.executor_config or {})

    @abstractmethod
    def launch_job(self, job: ContainerJob) -> tuple[bool, str]:
        """Start the job's current attempt; return ``(True, execution_id)``.

        Return ``(False, reason)`` for a failure that retrying will not fix;
        raise ``ExecutorError`` (``retryable=True``) for one that it may.
        """

    @abstractmethod
    def check_status(self, execution_id: str) -> str:
        """Return ``"running"``, ``"exited"``, ``"failed"`` or ``"not-found"``."""

    @abstractmethod
    def get_logs(self, execution_id: str) -> tuple[str, str]:
        """Return ``(stdout, stderr)`` as the platform has them now."""

    @abstractmethod
    def harvest_job(self, job: ContainerJob) -> bool:
        """Collect a finished execution's results into ``job`` (not saved).

        Sets ``exit_code``, ``stdout_log``, ``stderr_log``, ``docker_log``,
        ``clean_output``, ``completed_at`` and, where known, the platform's own
        ``started_at``, ``max_memory_usage``,
        ``cpu_usage_percent`` and ``last_error``, and the platform's timestamps
        with ``record_platform_times``. Removes nothing: the step calls
        ``cleanup`` once the results are stored, so a crash loses nothing.
        Returns False when the results could not be read.
        """

    @abstractmethod
    def cleanup(self, execution_id: str) -> bool:
        """Remove the execution's resources; True when nothing is left."""

    def stop(self, execution_id: str) -> bool:
        """Stop a running execution but keep what ``harvest_job`` reads.

        Platforms that cannot stop without removing fall back to ``cleanup``.
        """
        return self.cleanup(execution_id)

    def sample_usage(self, execution_id: str) -> dict[str, float] | None:
        """Return ``{"memory_bytes": …, "cpu_percent": …}`` now, or None if unknown."""
        return None

    def get_capabilities(self) -> dict[str, bool]:
        """Return what this platform can do, truthfully."""
        return dict(self.capabilities)

    def get_health_status(self) -> dict[str, Any]:
        """Return ``{"healthy": bool, "error": str | None, "response_time": seconds}``."""
        started = time.monotonic()
        try:
            self.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means unhealthy, reported as text
            return {
                "healthy": False,
                "error": str(exc),
                "response_time": time.monotonic() - started,
            }
        return {"healthy": True, "error": None, "response_time": time.monotonic() - started}

    def ping(self) -> None:
        """Raise if the platform cannot be reached; the default assumes it can."""
        return None

    @staticmethod
    def launch_key(job: ContainerJob) -> str:
        """The idempotency key of the job's current attempt: job id and attempt number."""
        return f"{job.id.hex}-{job.attempt_count}"

    @staticmethod
    def labels(job: ContainerJob) -> dict[str, str]:
        """Labels that let an execution be found again from the job alone."""
        return {
            LABEL_MANAGED: "true",
            LABEL_INSTANCE: setting("INSTANCE"),
            LABEL_JOB_ID: str(job.id),
            LABEL_ATTEMPT: str(job.attempt_count),
        }
