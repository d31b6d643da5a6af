"""A simulated executor whose outcome is set from ``executor_config``: for tests and demos.

It starts no container and says so in every job's output.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from container_manager import clock
from container_manager.executors import base
from container_manager.executors.exceptions import (
    ExecutorConfigurationError,
    ExecutorConnectionError,
)

if TYPE_CHECKING:
    from container_manager.models import ContainerJob

DEFAULT_STDOUT = "mock executor: simulated run, no container was started\n"

_CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "duration": (int, float),
    "exit_code": (int,),
    "stdout": (str,),
    "stderr": (str,),
    "launch_error": (str,),
    "launch_failures": (int,),
    "memory_bytes": (int,),
    "cpu_percent": (int, float),
    "vanish": (bool,),
}


class MockExecutor(base.ContainerExecutor):
    """Pretend to run jobs; every outcome comes from the host's ``executor_config``.

    Keys (all optional):
        ``duration`` (0): seconds an execution "runs".
        ``exit_code`` (0): its exit code.
        ``stdout`` / ``stderr``: its output (stdout defaults to a line saying it is simulated).
        ``launch_error``: ``"retryable"`` or ``"permanent"``: every launch fails that way.
        ``launch_failures`` (0): the first N launches of each job fail with a retryable error.
        ``memory_bytes`` / ``cpu_percent``: usage it reports while running.
        ``vanish`` (false): executions disappear, as a platform that forgot them.

    Executions live in this process's memory; the execution id also carries
    the start time, so another process can tell when one finishes. Time is
    ``container_manager.clock``'s, so a test that stops the clock stops the runs too.
    """

    capabilities = {
        **base.ContainerExecutor.capabilities,
        "supports_resource_limits": True,
        "supports_networking": True,
        "supports_idempotent_launch": True,
        "supports_resource_usage": True,
    }

    _executions: dict[str, dict[str, Any]] = {}
    _launch_calls: dict[str, int] = {}
    _lock = threading.Lock()

    def __init__(self, host):
        super().__init__(host)
        for key, value in self.config.items():
            expected = _CONFIG_TYPES.get(key)
            if expected is None:
                raise ExecutorConfigurationError(
                    f"executor_config[{key!r}]: unknown key for the mock executor "
                    f"(known: {', '.join(sorted(_CONFIG_TYPES))})",
                    key=key,
                )
            if not isinstance(value, expected) or isinstance(value, bool) != (expected == (bool,)):
                raise ExecutorConfigurationError(
                    f"executor_config[{key!r}]: expected {expected[0].__name__}, got {value!r}",
                    key=key,
                )

    def launch_job(self, job: ContainerJob) -> tuple[bool, str]:
        key = self.launch_key(job)
        with self._lock:
            calls = self._launch_calls[str(job.id)] = self._launch_calls.get(str(job.id), 0) + 1
            existing = next((i for i, e in self._executions.items() if e["key"] == key), None)
            if existing:
                return True, existing
            mode = self.config.get("launch_error")
            if mode == "permanent":
                return False, "mock executor: launch refused (launch_error=permanent)"
            if mode == "retryable" or calls <= self.config.get("launch_failures", 0):
                raise ExecutorConnectionError("mock executor: platform unavailable (simulated)")
            execution_id = f"mock-{key}-{clock.now().timestamp():.6f}"
            self._executions[execution_id] = {"key": key, "stopped": None}
        return True, execution_id

    def check_status(self, execution_id: str) -> str:
        if self.config.get("vanish"):
            return base.NOT_FOUND
        if self._finished_at(execution_id) <= clock.now().timestamp():
            return base.EXITED
        return base.RUNNING

    def get_logs(self, execution_id: str) -> tuple[str, str]:
        return self.config.get("stdout", DEFAULT_STDOUT), self.config.get("stderr", "")

    def harvest_job(self, job: ContainerJob) -> bool:
        if self.config.get("vanish"):
            return False
        execution = self._executions.get(job.execution_id, {})
        stopped = execution.get("stopped")
        job.exit_code = 137 if stopped else self.config.get("exit_code", 0)
        job.stdout_log, job.stderr_log = self.get_logs(job.execution_id)
        job.clean_output = job.stdout_log
        started = float(job.execution_id.rsplit("-", 1)[-1])
        job.started_at = datetime.fromtimestamp(started, tz=UTC)
        job.completed_at = datetime.fromtimestamp(self._finished_at(job.execution_id), tz=UTC)
        job.docker_log = f"mock execution {job.execution_id}: exit code {job.exit_code}\n"
        if "memory_bytes" in self.config:
            job.max_memory_usage = self.config["memory_bytes"]
        if "cpu_percent" in self.config:
            job.cpu_usage_percent = float(self.config["cpu_percent"])
        return True

    def stop(self, execution_id: str) -> bool:
        with self._lock:
            execution = self._executions.setdefault(execution_id, {"key": "", "stopped": None})
            execution["stopped"] = execution["stopped"] or clock.now().timestamp()
        return True

    def cleanup(self, execution_id: str) -> bool:
        self.stop(execution_id)
        return True

    def sample_usage(self, execution_id: str) -> dict[str, float] | None:
        if "memory_bytes" not in self.config and "cpu_percent" not in self.config:
            return None
        return {
            "memory_bytes": self.config.get("memory_bytes"),
            "cpu_percent": self.config.get("cpu_percent"),
        }

    @classmethod
    def launch_count(cls, job_id: Any) -> int:
        """How many times ``launch_job`` was called for a job in this process (for tests)."""
        return cls._launch_calls.get(str(job_id), 0)

    @classmethod
    def execution_count(cls, job_id: Any) -> int:
        """How many distinct executions were started for a job in this process (for tests)."""
        prefix = f"mock-{uuid.UUID(str(job_id)).hex}-"
        return sum(1 for execution_id in cls._executions if execution_id.startswith(prefix))

    def _finished_at(self, execution_id: str) -> float:
        started = float(execution_id.rsplit("-", 1)[-1])
        stopped = self._executions.get(execution_id, {}).get("stopped")
        natural_end = started + float(self.config.get("duration", 0))
        return min(natural_end, stopped) if stopped else natural_end
