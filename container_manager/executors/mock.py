"""A simulated executor whose outcome is set from ``executor_config``: for tests and demos.

It starts no container and says so in every job's output.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from container_manager import clock
from container_manager.conf import setting
from container_manager.executors import base, secretresolver
from container_manager.executors._cloud import pull_failure
from container_manager.executors.exceptions import (
    ExecutorConnectionError,
    ExecutorError,
    ImagePullError,
)
from container_manager.executors.types import (
    ConfigKey,
    ExecutionState,
    HarvestResult,
    LaunchRequest,
    Usage,
)
from container_manager.rules.logtext import cap_log

DEFAULT_STDOUT = "mock executor: simulated run, no container was started\n"


class MockExecutor(base.ContainerExecutor):
    """Pretend to run jobs; every outcome comes from the host's ``executor_config``.

    Keys (all optional):
        ``duration`` (0): seconds an execution "runs"; its first check comes when it ends.
        ``exit_code`` (0): its exit code.
        ``stdout`` / ``stderr``: its output (stdout defaults to a line saying it is simulated).
        ``line_interval`` (0): seconds between the lines of each stream while it runs: line
        ``n`` (from 0) is printed ``n * line_interval`` seconds after the start, so live
        reads see the output grow; 0 prints everything at once.
        ``launch_error``: ``"retryable"`` (the platform refused this job for now, counted
        against its attempts), ``"image"`` (the job's image cannot be pulled, counted),
        ``"unreachable"`` (the host cannot be reached, not counted) or ``"permanent"``:
        every launch fails that way.
        ``launch_failures`` (0): the first N launches of each job fail with a retryable error.
        ``ignore_sigterm`` (false): a stop request does not end an execution, only ``kill``.
        ``memory_bytes`` / ``cpu_percent``: usage it reports while running.
        ``vanish`` (false): executions disappear, as a platform that forgot them.

    Executions live in this process's memory; the execution id also carries
    the start time, so another process can tell when one finishes. Time is
    ``container_manager.clock``'s, so a test that stops the clock stops the runs too.
    """

    config_schema = (
        ConfigKey("duration", (int, float), "Seconds an execution runs.", default=0),
        ConfigKey("exit_code", (int,), "Its exit code.", default=0),
        ConfigKey("stdout", (str,), "Its standard output.", default=DEFAULT_STDOUT),
        ConfigKey("stderr", (str,), "Its standard error.", default=""),
        ConfigKey("line_interval", (int, float), "Seconds between printed lines.", default=0),
        ConfigKey(
            "launch_error",
            (str,),
            "'retryable', 'image', 'unreachable' or 'permanent': launches fail.",
        ),
        ConfigKey("launch_failures", (int,), "The first N launches fail, retryably.", default=0),
        ConfigKey("memory_bytes", (int,), "Memory it reports using."),
        ConfigKey("cpu_percent", (int, float), "CPU percent it reports using."),
        ConfigKey("vanish", (bool,), "Executions disappear.", default=False),
        ConfigKey("ignore_sigterm", (bool,), "Only kill ends an execution.", default=False),
    )
    capabilities = {
        **base.ContainerExecutor.capabilities,
        "supports_resource_limits": True,
        "supports_networking": True,
        "supports_idempotent_launch": True,
        "supports_resource_usage": True,
        "supports_live_logs": True,
    }
    #: Executions are found or made under one lock, by launch key.
    concurrent_launch_safe = True
    #: References are resolved at launch as Docker does, and the values dropped.
    resolves_secrets = True

    _executions: dict[str, dict[str, Any]] = {}
    _launch_calls: dict[str, int] = {}
    _lock = threading.Lock()

    def launch_job(self, request: LaunchRequest) -> str:
        key = request.launch_key
        with self._lock:
            job_id = str(request.job_id)
            calls = self._launch_calls[job_id] = self._launch_calls.get(job_id, 0) + 1
            existing = next((i for i, e in self._executions.items() if e["key"] == key), None)
            if existing:
                return existing
            mode = self.config.get("launch_error")
            if mode == "permanent":
                raise ExecutorError(
                    "mock executor: launch refused (launch_error=permanent)", retryable=False
                )
            if mode == "unreachable":
                raise ExecutorConnectionError("mock executor: host unreachable (simulated)")
            if mode == "image":
                raise ImagePullError(pull_failure(request.image, "no such image (simulated)"))
            if mode == "retryable" or calls <= self.config.get("launch_failures", 0):
                raise ExecutorError(
                    "mock executor: platform unavailable (simulated)", retryable=True
                )
            secretresolver.resolve_environment(request.environment, self.platform_name())
            execution_id = f"mock-{key}-{clock.now().timestamp():.6f}"
            self._executions[execution_id] = {"key": key, "stopped": None}
        return execution_id

    def check_status(self, execution_id: str) -> ExecutionState:
        if self.config.get("vanish"):
            return base.NOT_FOUND
        if self._finished_at(execution_id) <= clock.now().timestamp():
            return base.EXITED
        return base.RUNNING

    def get_logs(self, execution_id: str) -> tuple[str, str]:
        """The lines printed by now (by its end, once it ended), each stream capped."""
        printed = self._printed_lines(execution_id)
        stdout = self.config.get("stdout", DEFAULT_STDOUT)
        return _first_lines(stdout, printed), _first_lines(self.config.get("stderr", ""), printed)

    def harvest_job(self, execution_id: str) -> HarvestResult | None:
        if self.config.get("vanish"):
            return None
        stopped = self._executions.get(execution_id, {}).get("stopped")
        exit_code = 137 if stopped else self.config.get("exit_code", 0)
        stdout, stderr = self.get_logs(execution_id)
        started = float(execution_id.rsplit("-", 1)[-1])
        cpu = self.config.get("cpu_percent")
        return HarvestResult(
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            clean_output=stdout,
            platform_log=f"mock execution {execution_id}: exit code {exit_code}\n",
            usage=Usage(self.config.get("memory_bytes"), None if cpu is None else float(cpu)),
            started_at=datetime.fromtimestamp(started, tz=UTC),
            finished_at=datetime.fromtimestamp(self._finished_at(execution_id), tz=UTC),
        )

    def stop(self, execution_id: str) -> bool:
        with self._lock:
            execution = self._executions.setdefault(execution_id, {"key": "", "stopped": None})
            execution["stopped"] = execution["stopped"] or clock.now().timestamp()
        return True

    def request_stop(self, execution_id: str) -> ExecutionState | None:
        if not self.config.get("ignore_sigterm"):
            self.stop(execution_id)
        return None

    def kill(self, execution_id: str) -> None:
        self.stop(execution_id)

    def find_launched(self, request: LaunchRequest) -> str | None:
        with self._lock:
            key = request.launch_key
            return next((i for i, e in self._executions.items() if e["key"] == key), None)

    def cleanup(self, execution_id: str) -> bool:
        self.stop(execution_id)
        return True

    def seconds_left(self, execution_id: str) -> float | None:
        return max(0.0, self._finished_at(execution_id) - clock.now().timestamp())

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

    def _printed_lines(self, execution_id: str) -> int | None:
        """How many lines of each stream are printed by now; None: all of them."""
        interval = float(self.config.get("line_interval", 0))
        if not interval:
            return None
        started = float(execution_id.rsplit("-", 1)[-1])
        ran = min(clock.now().timestamp(), self._finished_at(execution_id)) - started
        return int(ran // interval) + 1

    def _finished_at(self, execution_id: str) -> float:
        started = float(execution_id.rsplit("-", 1)[-1])
        stopped = self._executions.get(execution_id, {}).get("stopped")
        natural_end = started + float(self.config.get("duration", 0))
        return min(natural_end, stopped) if stopped else natural_end


def _first_lines(text: str, count: int | None) -> str:
    """The first ``count`` lines of ``text`` (all when None), capped at LOG_MAX_BYTES."""
    return cap_log("".join(text.splitlines(True)[:count]), int(setting("LOG_MAX_BYTES")))
