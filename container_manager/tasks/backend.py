"""``ContainerTaskBackend``: each enqueued task becomes a ``ContainerJob`` running the runner.

The job's id is the ``TaskResult`` id; its row is the result's only store.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from container_manager import dispatch
from container_manager.conf import setting
from container_manager.models import ContainerJob, EnvironmentVariableTemplate, ExecutorHost
from container_manager.rules import taskwire
from container_manager.tasks import results
from container_manager.tasks.compat import (
    DEFAULT_TASK_QUEUE_NAME,
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskResult,
    TaskResultDoesNotExist,
    normalize_json,
    task_enqueued,
)

#: The command every task job runs in its image.
RUNNER_COMMAND = "python -m container_manager.run_task"
#: Resource options a task may set for itself: ``@task(memory_limit=512)`` (Django 6.1+).
RESOURCE_OPTIONS = ("image", "memory_limit", "cpu_limit", "timeout_seconds")
#: Every key ``OPTIONS`` may hold.
OPTION_NAMES = frozenset({*RESOURCE_OPTIONS, "host", "queue_hosts", "environment_template"})
#: Task fields the payload keeps (beside its path, queue and context flag) for ``get_result``.
STORED_FIELDS = ("priority", "backend", "run_after", *RESOURCE_OPTIONS)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerTask(Task):
    """A task with its own container resources; ``None`` takes the backend's ``OPTIONS``."""

    image: str | None = None
    memory_limit: int | None = None
    cpu_limit: float | None = None
    timeout_seconds: int | None = None

    def using(self, *, priority: Any = None, queue_name: Any = None, run_after: Any = None,
              backend: Any = None, **resources: Any) -> ContainerTask:  # fmt: skip
        """A copy with other defaults: the framework's and those of ``RESOURCE_OPTIONS``."""
        unknown = set(resources) - set(RESOURCE_OPTIONS)
        if unknown:
            raise TypeError(f"using() got unexpected options: {', '.join(sorted(unknown))}")
        # Task.using by name: zero-argument super() does not work in a slots dataclass.
        task = Task.using(
            self, priority=priority, queue_name=queue_name, run_after=run_after, backend=backend
        )
        changes = {name: value for name, value in resources.items() if value is not None}
        return replace(task, **changes) if changes else task


class ContainerTaskBackend(BaseTaskBackend):
    """Run each task as a container job on the hosts of ``container_manager``.

    ``OPTIONS``: ``image`` (required), ``host`` (an ``ExecutorHost`` name;
    blank for any active host), ``queue_hosts`` (``{queue_name: host name}``),
    ``memory_limit`` (MB), ``cpu_limit`` (cores), ``timeout_seconds``,
    ``environment_template`` (an ``EnvironmentVariableTemplate`` name). The
    job's row is written in the caller's transaction and launched when it
    commits: a task enqueued in a transaction that rolls back never runs.
    """

    task_class = ContainerTask
    #: ``run_after`` is honoured: the job waits as pending until then.
    supports_defer = True
    #: Coroutine functions run in the container through ``Task.call``.
    supports_async_task = True
    #: Results are read back from the job's row, in any process.
    supports_get_result = True
    #: Higher ``priority`` launches first among jobs waiting for the same host.
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.queue_hosts = self.options.get("queue_hosts") or {}
        if "QUEUES" not in params and isinstance(self.queue_hosts, dict):
            self.queues = {DEFAULT_TASK_QUEUE_NAME, *self.queue_hosts}

    # -- the framework's contract ------------------------------------------------------------

    def validate_task(self, task: Task) -> None:
        """The framework's rules (module-level function, queue, priority…) and the resources."""
        super().validate_task(task)
        for name in RESOURCE_OPTIONS:
            problem = _resource_problem(name, getattr(task, name, None))
            if problem:
                raise InvalidTask(f"{task.module_path}: {problem}")

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        """Store the task as a pending job and return its result; it launches on commit."""
        self.validate_task(task)
        problems = self.option_problems()
        if problems:
            raise ImproperlyConfigured(f"TASKS[{self.alias!r}]: {problems[0]}")
        result_id = uuid.uuid4()
        template = self._template()
        environment = self._environment(template, self._payload(task, args, kwargs, str(result_id)))
        limits = {name: self._resource(task, name) for name in RESOURCE_OPTIONS[1:]}
        with transaction.atomic():
            # Registered first, so task_enqueued precedes every step the commit sends (even
            # steps run inline); it reads `result` when sent, and a rollback drops it unsent.
            transaction.on_commit(lambda: task_enqueued.send(type(self), task_result=result))
            job = ContainerJob.objects.create_job(
                id=result_id,
                image=self._resource(task, "image") or "",
                command=RUNNER_COMMAND,
                name=f"task {task.module_path}"[:200],
                environment_template=template,
                environment_vars=environment,
                docker_host=self._host(task.queue_name),
                priority=task.priority,
                run_after=task.run_after,
                **{name: value for name, value in limits.items() if value is not None},
            )
            result = results.from_job(job, task, self.alias, executions=[])
            delay = (task.run_after - timezone.now()).total_seconds() if task.run_after else 0
            if delay > 0:
                # The launch sent at creation finds it not due; this one arrives when it is.
                dispatch.send_on_commit("launch", job.pk, delay=delay)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        """The task's result as its job's row says now; ``TaskResultDoesNotExist`` if none.

        Its task is the one ``enqueue`` was given: the imported task with the stored fields.
        """
        try:
            job = ContainerJob.objects.select_related("docker_host").get(
                pk=uuid.UUID(str(result_id))
            )
        except (ValueError, ContainerJob.DoesNotExist):
            raise TaskResultDoesNotExist(result_id) from None
        payload = results.payload_of(job)
        if payload is None or payload["backend"] != self.alias:
            raise TaskResultDoesNotExist(f"{result_id}: not a task of backend {self.alias!r}")
        try:
            task = import_string(payload["task"])
        except ImportError as exc:
            raise TaskResultDoesNotExist(f"{result_id}: task {payload['task']!r}: {exc}") from None
        if not isinstance(task, Task):
            raise TaskResultDoesNotExist(f"{result_id}: {payload['task']!r} is not a task")
        stored = payload.get("fields") or {"priority": job.priority}
        return results.from_job(job, _restored(task, payload["queue"], stored), self.alias)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """One ``checks.Error`` per problem in ``OPTIONS`` (``manage.py check`` shows them)."""
        return [
            checks.Error(
                f"TASKS[{self.alias!r}]['OPTIONS']: {problem}",
                hint="See docs/settings.md, 'Django tasks'.",
                id="container_manager.E101",
            )
            for problem in self.option_problems()
        ]

    # -- helpers -----------------------------------------------------------------------------

    def option_problems(self) -> list[str]:
        """What is wrong with ``OPTIONS``, one sentence each; empty when nothing is."""
        options = self.options
        if not isinstance(options, dict):
            return ["must be a dict"]
        problems = [f"{key!r} is not an option ({', '.join(sorted(OPTION_NAMES))})"
                    for key in sorted(set(options) - OPTION_NAMES)]  # fmt: skip
        image = options.get("image")
        if not isinstance(image, str) or not image.strip():
            problems.append("'image' is required: the image that has your project installed")
        for name in RESOURCE_OPTIONS[1:]:
            problem = _resource_problem(name, options.get(name))
            if problem:
                problems.append(problem)
        for name in ("host", "environment_template"):
            if not isinstance(options.get(name) or "", str):
                problems.append(f"{name!r} must be a name (a string)")
        hosts = self.queue_hosts
        if not isinstance(hosts, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in hosts.items()
        ):
            problems.append("'queue_hosts' must map queue names to ExecutorHost names")
        elif self.queues:
            problems.extend(f"'queue_hosts' names queue {queue!r}, which QUEUES does not list"
                            for queue in sorted(set(hosts) - self.queues))  # fmt: skip
        return problems

    def _payload(self, task: Task, args: Any, kwargs: Any, result_id: str) -> str:
        try:
            payload = taskwire.encode_payload(
                task_path=task.module_path, backend=self.alias, args=normalize_json(list(args)),
                kwargs=normalize_json(dict(kwargs)), takes_context=task.takes_context,
                queue=task.queue_name, result_id=result_id, task_fields=_task_fields(task),
            )  # fmt: skip
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{task.module_path}: arguments must be JSON values: {exc}") from None
        size, limit = len(payload.encode()), setting("TASK_PAYLOAD_MAX_BYTES")
        if size > limit:
            raise ValidationError(
                {"args": f"args/kwargs: the payload of {task.module_path} is {size} bytes; "
                         f"TASK_PAYLOAD_MAX_BYTES allows {limit}. Pass a reference "
                         "(a row id, a storage key) instead of the data."}
            )  # fmt: skip
        return payload

    def _environment(
        self, template: EnvironmentVariableTemplate | None, payload: str
    ) -> dict[str, str]:
        """The payload, and this process's settings module unless the template names one."""
        environment = {taskwire.PAYLOAD_ENV: payload}
        settings_module = os.environ.get("DJANGO_SETTINGS_MODULE")
        named = template is not None and (
            "DJANGO_SETTINGS_MODULE" in template.get_environment_variables_dict()
        )
        if settings_module and not named:
            environment["DJANGO_SETTINGS_MODULE"] = settings_module
        return environment

    def _resource(self, task: Task, name: str) -> Any:
        own = getattr(task, name, None)
        return own if own is not None else self.options.get(name)

    def _template(self) -> EnvironmentVariableTemplate | None:
        name = self.options.get("environment_template")
        if not name:
            return None
        template = EnvironmentVariableTemplate.objects.filter(name=name).first()
        if template is None:
            raise ValidationError(
                {"environment_template": f"TASKS[{self.alias!r}]['OPTIONS']"
                 f"['environment_template']: no template named {name!r}."}
            )  # fmt: skip
        return template

    def _host(self, queue_name: str) -> ExecutorHost | None:
        name = self.queue_hosts.get(queue_name) or self.options.get("host")
        if not name:
            return None
        host = ExecutorHost.objects.filter(name=name).first()
        if host is None:
            raise ValidationError(
                {"docker_host": f"TASKS[{self.alias!r}]: queue {queue_name!r} goes to host "
                 f"{name!r}, and no ExecutorHost has that name."}
            )  # fmt: skip
        return host


def _task_fields(task: Task) -> dict[str, Any]:
    """The task's ``STORED_FIELDS`` that are set, as JSON values (``run_after`` in ISO 8601).

    Unset ones (None) are left out: ``using()`` cannot unset a field, so the imported
    task has None there too.
    """
    names = {field.name for field in fields(task)}
    values = {name: getattr(task, name) for name in STORED_FIELDS if name in names}
    return {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in values.items()
        if value is not None
    }


def _restored(task: Task, queue_name: str, stored: dict[str, Any]) -> Task:
    """The imported ``task`` with the queue and the fields ``_task_fields`` stored."""
    names = {field.name for field in fields(task)}
    changes = {name: value for name, value in stored.items() if name in names}
    if changes.get("run_after"):
        changes["run_after"] = datetime.fromisoformat(changes["run_after"])
    return replace(task, queue_name=queue_name, **changes)


def _resource_problem(name: str, value: Any) -> str | None:
    """Why a resource value is not acceptable, or None.

    >>> _resource_problem("cpu_limit", 0.5), _resource_problem("memory_limit", -1)
    (None, "'memory_limit' must be a positive whole number (MB), not -1")
    """
    if value is None:
        return None
    if name == "image":
        return (
            None
            if isinstance(value, str) and value.strip()
            else "'image' must be a non-empty string"
        )
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        ok = False
    else:
        ok = name == "cpu_limit" or isinstance(value, int)
    if ok:
        return None
    unit = {"memory_limit": "whole number (MB)", "cpu_limit": "number (cores)",
            "timeout_seconds": "whole number (seconds)"}[name]  # fmt: skip
    return f"{name!r} must be a positive {unit}, not {value!r}"
