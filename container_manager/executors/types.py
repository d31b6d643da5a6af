"""What the steps and the executors exchange: launch requests, execution states, harvest results.

Immutable values with no ORM in them; executors import only these and their platform's SDK.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from container_manager.executors.exceptions import ExecutorConfigurationError


class ExecutionState(enum.StrEnum):
    """What a platform says about an execution; not a job status (see ``status.JobStatus``)."""

    RUNNING = "running"
    EXITED = "exited"
    FAILED = "failed"
    NOT_FOUND = "not-found"


@dataclass(frozen=True)
class Network:
    """A network the container joins, with its aliases there."""

    name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class LaunchRequest:
    """Everything an executor needs to start one attempt of a job, built by the steps.

    ``launch_key`` (job id and attempt) makes a launch idempotent: an executor
    asked twice for the same key returns the execution it already started.
    ``environment`` is the job's resolved environment; steps may add to it.
    """

    job_id: str
    attempt: int
    launch_key: str
    image: str
    command: tuple[str, ...] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    memory_limit_mb: int | None = None
    cpu_limit: float | None = None
    networks: tuple[Network, ...] = ()
    working_directory: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    timeout_seconds: int = 3600


@dataclass(frozen=True)
class Usage:
    """Resource use of an execution: peak memory in bytes and average CPU percent."""

    memory_bytes: int | None = None
    cpu_percent: float | None = None


@dataclass(frozen=True)
class HarvestResult:
    """What a finished execution left behind, as the platform reports it.

    Times are the platform's own where it knows them (None otherwise);
    ``reason`` says why it failed when the exit code alone does not.
    ``clean_output`` is None when it is stdout without timestamps.
    """

    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    platform_log: str = ""
    clean_output: str | None = None
    usage: Usage = Usage()
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str = ""
    #: Every timestamp the platform gave, under its own names (ECS ``pullStartedAt``, ...).
    platform_times: dict[str, datetime] = field(default_factory=dict)


def known_times(times: dict[str, datetime | None]) -> dict[str, datetime]:
    """The timestamps a platform gave, the missing ones (None) left out.

    >>> known_times({"startedAt": datetime(2024, 1, 1), "stoppedAt": None})
    {'startedAt': datetime.datetime(2024, 1, 1, 0, 0)}
    """
    return {name: at for name, at in times.items() if at is not None}


@dataclass(frozen=True)
class ConfigKey:
    """One ``executor_config`` key an executor reads: its types, whether required, its default."""

    name: str
    types: tuple[type, ...]
    doc: str
    required: bool = False
    default: Any = None

    def check(self, value: Any, platform: str) -> None:
        """Raise ``ExecutorConfigurationError`` naming the key when ``value`` has a wrong type.

        >>> ConfigKey("timeout", (int, float), "seconds").check(True, "docker")
        Traceback (most recent call last):
        ...
        container_manager.executors.exceptions.ExecutorConfigurationError: \
executor_config['timeout']: expected int or float, got bool
        """
        if (isinstance(value, bool) and bool not in self.types) or not isinstance(
            value, self.types
        ):
            names = " or ".join(t.__name__ for t in self.types)
            raise ExecutorConfigurationError(
                f"executor_config[{self.name!r}]: expected {names}, got {type(value).__name__}",
                key=self.name,
            )


#: Keys every executor accepts, read by other modules than the executor.
SHARED_CONFIG = (
    ConfigKey(
        "prices",
        (dict,),
        "the host's own rates for the cost estimate (container_manager.engine.cost)",
    ),
)


def validate_config(config: Any, schema: tuple[ConfigKey, ...], platform: str) -> dict[str, Any]:
    """Check ``config`` against ``schema``; return it with defaults filled in.

    Raises ``ExecutorConfigurationError`` naming the first unknown, mistyped or missing key.

    >>> schema = (ConfigKey("a", (int,), "a number", default=1), ConfigKey("b", (str,), "", True))
    >>> validate_config({"b": "x"}, schema, "demo")
    {'a': 1, 'b': 'x'}
    >>> validate_config({"a": 2}, schema, "demo")
    Traceback (most recent call last):
    ...
    container_manager.executors.exceptions.ExecutorConfigurationError: \
executor_config['b']: required by the demo executor
    """
    if not isinstance(config, dict):
        raise ExecutorConfigurationError("executor_config: must be a JSON object", key="")
    keys = {key.name: key for key in (*schema, *SHARED_CONFIG)}
    for name, value in config.items():
        if name not in keys:
            raise ExecutorConfigurationError(
                f"executor_config[{name!r}]: unknown key for the {platform} executor "
                f"(known: {', '.join(sorted(keys))})",
                key=name,
            )
        keys[name].check(value, platform)
    for key in schema:
        if key.required and config.get(key.name) in (None, "", []):
            raise ExecutorConfigurationError(
                f"executor_config[{key.name!r}]: required by the {platform} executor",
                key=key.name,
            )
    defaults = {k.name: k.default for k in schema if k.default is not None}
    return {**defaults, **config}
