"""Capabilities tell the truth: each one an executor declares has the code that carries it out.

The table names, for each capability, what implements it: the ``LaunchRequest`` field the
executor reads, the method it overrides, or the platform definition it starts.
"""

import inspect
from collections.abc import Callable

import pytest

from container_manager.executors import _cloud, base
from container_manager.executors.cloudrun import CloudRunExecutor
from container_manager.executors.docker import DockerExecutor
from container_manager.executors.fargate import FargateExecutor
from container_manager.executors.mock import MockExecutor
from container_manager.executors.scaleway import ScalewayExecutor

EXECUTORS = [DockerExecutor, MockExecutor, CloudRunExecutor, FargateExecutor, ScalewayExecutor]
#: The mock is a stand-in platform: it takes limits and networks without acting on them, so
#: that jobs asking for them can be tested on it.
SIMULATED = {(MockExecutor, "supports_resource_limits"), (MockExecutor, "supports_networking")}


def reads(*fields: str) -> Callable[[type], bool]:
    """The executor's module reads one of these ``LaunchRequest`` fields."""
    return lambda cls: any(
        f".{field}" in inspect.getsource(inspect.getmodule(cls)) for field in fields
    )


def overrides(method: str) -> Callable[[type], bool]:
    """The executor (or a mixin of it) has its own ``method``."""
    return lambda cls: getattr(cls, method) is not getattr(base.ContainerExecutor, method)


def starts_a_platform_definition(cls: type) -> bool:
    """It starts a job / task definition made on the platform, which carries secrets and
    scales out there; and finds its executions by launch key (``_cloud.FindOrStart``)."""
    return issubclass(cls, _cloud.FindOrStart)


#: Capability -> what carries it out. A capability with no entry has no code path: no
#: executor may declare it.
IMPLEMENTED_BY: dict[str, Callable[[type], bool]] = {
    "supports_resource_limits": reads("memory_limit_mb", "cpu_limit"),
    "supports_networking": reads("networks"),
    "supports_idempotent_launch": overrides("find_launched"),
    "supports_resource_usage": overrides("sample_usage"),
    "supports_live_logs": overrides("get_logs"),
    "supports_logs": overrides("get_logs"),
    "supports_separate_stderr": overrides("get_logs"),
    "supports_platform_timeout": reads("timeout_seconds"),
    "supports_image_override": reads("image"),
    "supports_secrets": starts_a_platform_definition,
    "supports_scaling": starts_a_platform_definition,
}

CASES = [
    (cls, name)
    for cls in EXECUTORS
    for name, declared in cls.capabilities.items()
    if declared and (cls, name) not in SIMULATED
]


@pytest.mark.parametrize(("cls", "capability"), CASES, ids=lambda v: getattr(v, "__name__", v))
def test_each_declared_capability_has_its_code_path(cls, capability):
    implemented = IMPLEMENTED_BY.get(capability)
    assert implemented is not None, f"{capability}: no code carries it out"
    assert implemented(cls), f"{cls.__name__} declares {capability} without its code path"


def test_docker_claims_no_gpu_nor_persistent_storage():
    declared = DockerExecutor.capabilities
    assert not declared["supports_gpu"] and not declared["supports_persistent_storage"]
