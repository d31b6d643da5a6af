"""Example tasks for the tasks backend's tests; the Python test image carries this module too.

Import it only where ``TASKS["default"]`` is a ``ContainerTaskBackend``: the options need its class.
"""

import asyncio
import time

from container_manager.tasks.compat import task


@task()
def add(a, b):
    return a + b


@task()
def fail(message):
    raise ValueError(message)


@task(timeout_seconds=3)
def sleep(seconds):
    time.sleep(seconds)
    return seconds


@task(takes_context=True)
def whoami(context, greeting):
    return {"id": context.task_result.id, "attempt": context.attempt, "greeting": greeting}


@task(priority=5, memory_limit=96, cpu_limit=0.5)
def sized():
    return "ok"


@task()
async def wait_and_echo(value):
    await asyncio.sleep(0)
    return value


@task()
def unserialisable():
    return object()


@task()
def interrupted():
    raise KeyboardInterrupt("stop")
