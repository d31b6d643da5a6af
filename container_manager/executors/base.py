"""The executor interface: what the steps ask of every container platform.

Executors get launch requests and return execution ids, states and harvest results;
the steps (``container_manager.engine.steps``) read and write the rows.
"""

from __future__ import annotations

import json
import shlex
import time
from abc import ABC, abstractmethod
from typing import Any

from django.apps import apps

from container_manager.conf import setting
from container_manager.executors import secretresolver
from container_manager.executors.exceptions import ExecutorError
from container_manager.executors.types import (
    ConfigKey,
    ExecutionState,
    HarvestResult,
    LaunchRequest,
    Usage,
    validate_config,
)

#: What ``check_status`` answers (the members of ``ExecutionState``).
RUNNING = ExecutionState.RUNNING
EXITED = ExecutionState.EXITED
FAILED = ExecutionState.FAILED
NOT_FOUND = ExecutionState.NOT_FOUND

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


class ContainerExecutor(ABC):
    """Run containers on one platform: an adapter that speaks only that platform's API.

    Subclasses implement the five abstract methods and declare ``config_schema``
    (the ``executor_config`` keys they read) and ``capabilities``. They get
    immutable ``LaunchRequest`` values from the steps and return execution ids,
    ``ExecutionState`` members and ``HarvestResult`` values; they never read
    or write a database row. ``launch_job`` must be idempotent per
    ``request.launch_key``: asked again for the same key, it returns the
    execution that is already there instead of starting a second one.
    """

    #: The ``executor_config`` keys this executor reads; others are refused.
    config_schema: tuple[ConfigKey, ...] = ()
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
        # get_logs returns a running execution's output so far, in the append-only form below.
        "supports_live_logs": False,
    }
    #: ``request_stop`` has the platform itself kill the execution once STOP_GRACE_SECONDS
    #: have passed (Docker's ``stop?t=``), so the steps' kill is only a backstop.
    stop_kills_after_grace: bool = False
    #: ``start`` run for a launch key while another ``start`` of that key is still under way
    #: returns the same execution (the platform enforces the key), so a launch whose launcher
    #: went quiet with nothing found is taken over at LAUNCH_RECONCILE_SECONDS; without it,
    #: only once the launch's lease has expired.
    concurrent_launch_safe: bool = False
    #: Secret reference kinds (``rules.secretrefs.KINDS``) the platform resolves itself: the
    #: executor passes them by name, and their values never reach this process.
    platform_secret_kinds: frozenset[str] = frozenset()
    #: Other references are resolved at launch, in memory, through ``SECRET_RESOLVER``
    #: (``secretresolver.resolve_environment``) and handed to the container as values.
    resolves_secrets: bool = False
    #: The ``executor_config`` key of the platform job whose image every run gets, on
    #: platforms whose runs cannot change it (``executors.images``); "" where a launch names it.
    platform_job_key: str = ""

    def __init__(self, host: Any):
        self.host = host
        self.config: dict[str, Any] = validate_config(
            dict(host.executor_config or {}), self.config_schema, self.platform_name()
        )

    @classmethod
    def platform_name(cls) -> str:
        """The name used in messages: the class name without ``Executor``, lower case."""
        return cls.__name__.removesuffix("Executor").lower() or cls.__name__

    @classmethod
    def secret_kinds(cls) -> frozenset[str]:
        """The secret reference kinds a job on this platform may use; checked at submit.

        An executor that declares neither attribute takes no reference: its jobs are refused.
        """
        if cls.resolves_secrets:
            return cls.platform_secret_kinds | secretresolver.resolver_kinds()
        return cls.platform_secret_kinds

    @classmethod
    def image_refusal(cls, config: dict[str, Any], image: str) -> str:
        """Why a job naming ``image`` is refused on a host with ``config``; "" when it is not.

        Every image is accepted where a launch names it; ``images.PlatformImages`` refuses
        an image no platform job of the host runs.
        """
        return ""

    @abstractmethod
    def launch_job(self, request: LaunchRequest) -> str:
        """Start the attempt ``request`` describes (or find it started); return its execution id.

        Raise ``ExecutorError`` with ``retryable=True`` for a failure a later
        attempt may not meet, ``retryable=False`` for one it would.
        """

    @abstractmethod
    def check_status(self, execution_id: str) -> ExecutionState:
        """Return the execution's state as the platform reports it now."""

    @abstractmethod
    def get_logs(self, execution_id: str) -> tuple[str, str]:
        """Return ``(stdout, stderr)`` as the platform has them now, each through ``cap_log``.

        With ``supports_live_logs``, a running execution's text is what it printed so far:
        a later call returns it extended (never rewritten, apart from the head ``cap_log``
        drops) and ``harvest_job`` returns the same text, so the byte offsets readers follow
        the streams by (``logtext.slice_log``) stay valid until the logs are stored.
        """

    @abstractmethod
    def harvest_job(self, execution_id: str) -> HarvestResult | None:
        """Read a finished execution's results; None when the platform has none any more.

        Removes nothing: the steps call ``cleanup`` once the results are
        stored, so a crash loses nothing.
        """

    @abstractmethod
    def cleanup(self, execution_id: str) -> bool:
        """Remove the execution's resources; True when nothing is left."""

    def stop(self, execution_id: str) -> bool:
        """Stop a running execution but keep what ``harvest_job`` reads.

        Platforms that cannot stop without removing fall back to ``cleanup``.
        """
        return self.cleanup(execution_id)

    def request_stop(self, execution_id: str) -> ExecutionState | None:
        """Ask the platform to stop the execution (SIGTERM or its like) and return at once.

        Never waits for the execution to end: the steps look again after
        ``STOP_GRACE_SECONDS`` and call ``kill`` if it still runs. Returns
        ``RUNNING`` when the platform's answer says the execution is still
        stopping (the steps then need not look now), None when they must look.
        The default is ``stop``, right for platforms whose stop call returns at
        once and that kill after their own stop timeout.
        """
        self.stop(execution_id)
        return None

    def kill(self, execution_id: str) -> None:
        """Force the execution to end now (SIGKILL or its like); asks to stop again by default."""
        self.request_stop(execution_id)

    def find_launched(self, request: LaunchRequest) -> str | None:
        """The execution of ``request``'s attempt if the platform has one, else None; never starts.

        Lets the steps reconcile a launch whose launcher died after taking the slot. The
        default, None, means "cannot tell": the steps then take the launch over at
        LAUNCH_RECONCILE_SECONDS if ``concurrent_launch_safe``, else when its lease expires.
        """
        return None

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

    # -- what the steps call: the seed-style adapter below answers these differently ----------

    def seconds_left(self, execution_id: str) -> float | None:
        """Seconds until the execution ends, if known in advance (None: unknown, the default).

        No check is sent later than that, the launch's first or a re-check: the mock knows.
        """
        return None

    def start(self, request: LaunchRequest) -> str:
        """The launch step's entry point: ``launch_job(request)``."""
        return self.launch_job(request)

    def collect(self, execution_id: str) -> HarvestResult | None:
        """The harvest's entry point: ``harvest_job(execution_id)``."""
        return self.harvest_job(execution_id)


class LegacyExecutorAdapter(ContainerExecutor):
    """Compatibility base for executors written in the seed's style, against the job row.

    Subclass it and implement ``launch_job(job) -> (ok, execution_id_or_reason)``
    and ``harvest_job(job) -> bool`` setting ``exit_code``, ``stdout_log``,
    ``stderr_log``, ``docker_log``, ``completed_at`` (and optionally
    ``clean_output``, ``started_at``, ``max_memory_usage``,
    ``cpu_usage_percent``, ``last_error``) on the unsaved ``job``. The adapter
    loads the row (one query more per launch and harvest) and turns the
    answers into the new interface's values; new executors should not use it.
    """

    config_schema = ()

    def __init__(self, host: Any):
        self.host = host
        self.config = dict(host.executor_config or {})

    def start(self, request: LaunchRequest) -> str:
        job = _job_model().objects.select_related("docker_host").get(pk=request.job_id)
        launched, result = self.launch_job(job)  # type: ignore[arg-type]
        if not launched:
            raise ExecutorError(result, retryable=False)
        return result

    def collect(self, execution_id: str) -> HarvestResult | None:
        job = _job_model().objects.filter(execution_id=execution_id).order_by("-updated_at").first()
        if job is None or not self.harvest_job(job):  # type: ignore[arg-type]
            return None
        return HarvestResult(
            exit_code=job.exit_code,
            stdout=job.stdout_log,
            stderr=job.stderr_log,
            platform_log=job.docker_log,
            clean_output=job.clean_output or None,
            usage=Usage(job.max_memory_usage, job.cpu_usage_percent),
            started_at=job.started_at,
            finished_at=job.completed_at,
            reason=job.last_error or "",
        )

    @staticmethod
    def launch_key(job: Any) -> str:
        """The idempotency key of the job's current attempt: job id and attempt number."""
        return launch_key(job.pk, job.attempt_count)

    @staticmethod
    def labels(job: Any) -> dict[str, str]:
        """Labels that let an execution be found again from the job alone."""
        return labels(job.pk, job.attempt_count)


def launch_key(job_id: Any, attempt: int) -> str:
    """The idempotency key of one attempt: the job id's hex and the attempt number.

    >>> launch_key("6f1c2b9e-0000-4000-8000-000000000001", 2)
    '6f1c2b9e000040008000000000000001-2'
    """
    return f"{str(job_id).replace('-', '')}-{attempt}"


def labels(job_id: Any, attempt: int) -> dict[str, str]:
    """Labels (or tags) that let an execution be found again from the job alone."""
    return {
        LABEL_MANAGED: "true",
        LABEL_INSTANCE: setting("INSTANCE"),
        LABEL_JOB_ID: str(job_id),
        LABEL_ATTEMPT: str(attempt),
    }


def _job_model() -> Any:
    # By name, so that this module does not import the models (they import the executors).
    return apps.get_model("container_manager", "ContainerJob")
