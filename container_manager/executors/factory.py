"""Find the executor class for a host's ``executor_type`` and keep one instance per host config.

Built-in types map to modules here; ``CONTAINER_MANAGER["EXECUTORS"]`` adds or replaces types.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from django.utils.module_loading import import_string

from container_manager.conf import setting
from container_manager.executors.base import ContainerExecutor
from container_manager.executors.exceptions import ExecutorConfigurationError

#: The one registry of built-in executor types: name -> (class path, label).
BUILTIN_EXECUTOR_TYPES: dict[str, tuple[str, str]] = {
    "docker": ("container_manager.executors.docker.DockerExecutor", "Docker"),
    "cloudrun": ("container_manager.executors.cloudrun.CloudRunExecutor", "Google Cloud Run"),
    "fargate": ("container_manager.executors.fargate.FargateExecutor", "AWS Fargate"),
    "scaleway": ("container_manager.executors.scaleway.ScalewayExecutor", "Scaleway Containers"),
    "mock": ("container_manager.executors.mock.MockExecutor", "Mock (tests and demos)"),
}
#: Built-in type name -> class path.
BUILTIN_EXECUTORS = {name: path for name, (path, _label) in BUILTIN_EXECUTOR_TYPES.items()}


def executor_choices() -> list[tuple[str, str]]:
    """Executor types a host may name: the built-in ones, then those added in settings.

    >>> executor_choices()[0]
    ('docker', 'Docker')
    """
    builtin = [(name, label) for name, (_path, label) in BUILTIN_EXECUTOR_TYPES.items()]
    extra = [(name, name) for name in setting("EXECUTORS") if name not in BUILTIN_EXECUTOR_TYPES]
    return builtin + extra


_instances: dict[tuple[Any, str], ContainerExecutor] = {}
_lock = threading.Lock()


class ExecutorFactory:
    """Give the executor for a job or a host, reusing one instance per host configuration.

    >>> ExecutorFactory.executor_class("mock").__name__
    'MockExecutor'
    >>> ExecutorFactory.executor_class("nope")
    Traceback (most recent call last):
    ...
    container_manager.executors.exceptions.ExecutorConfigurationError: executor_type: unknown \
executor type 'nope' (known: cloudrun, docker, fargate, mock, scaleway)
    """

    @staticmethod
    def executor_class(executor_type: str) -> type[ContainerExecutor]:
        """The class registered for ``executor_type``; raises ``ExecutorConfigurationError``."""
        registry = {**BUILTIN_EXECUTORS, **setting("EXECUTORS")}
        path = registry.get(executor_type)
        if path is None:
            known = ", ".join(sorted(registry))
            raise ExecutorConfigurationError(
                f"executor_type: unknown executor type {executor_type!r} (known: {known})",
                key="executor_type",
            )
        try:
            executor_class = import_string(path)
        except ImportError as exc:
            raise ExecutorConfigurationError(
                f"executor_type: {executor_type!r} needs {path}, which cannot be imported: {exc}",
                key="executor_type",
            ) from exc
        if not (isinstance(executor_class, type) and issubclass(executor_class, ContainerExecutor)):
            raise ExecutorConfigurationError(
                f"executor_type: {path} is not a ContainerExecutor", key="executor_type"
            )
        return executor_class

    def get_executor(self, target: Any) -> ContainerExecutor:
        """The executor for a job (its ``docker_host``) or for a host."""
        host = getattr(target, "docker_host", target)
        key = (host.pk, _config_fingerprint(host))
        with _lock:
            executor = _instances.get(key)
            if executor is None:
                executor = self.executor_class(host.executor_type)(host)
                _instances[key] = executor
        return executor


def clear_cache() -> None:
    """Forget every cached executor (tests, or after hosts were edited in bulk)."""
    with _lock:
        _instances.clear()


def _config_fingerprint(host: Any) -> str:
    return json.dumps(
        [
            host.executor_type,
            host.connection_string,
            host.host_type,
            host.tls_enabled,
            host.tls_verify,
            host.auto_pull_images,
            host.executor_config,
        ],
        sort_keys=True,
        default=str,
    )
