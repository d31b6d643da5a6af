"""ECS "Task State Change" events, delivered by an EventBridge rule to the step queue.

The event names the task (the job's execution id); a STOPPED task is harvested at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from container_manager.events import hints
from container_manager.executors.factory import ExecutorFactory
from container_manager.executors.fargate import STARTED_BY_PREFIX

if TYPE_CHECKING:
    from container_manager.engine.runner import StepOutcome

#: Where the newest event about the job's task is kept, in its ``executor_metadata``.
METADATA_KEY = "ecs_task"

DETAIL_TYPE = "ECS Task State Change"
SOURCE = "aws.ecs"
#: Task fields kept from an event: what a harvest reads when ECS describes the task no more.
TASK_FIELDS = (
    "taskArn", "taskDefinitionArn", "lastStatus", "desiredStatus", "stopCode", "stoppedReason",
    "startedAt", "stoppingAt", "stoppedAt", "startedBy", "group", "version",
)  # fmt: skip
CONTAINER_FIELDS = ("name", "lastStatus", "exitCode", "reason")
#: Compare-and-set attempts when concurrent events update the same job.
CAS_ATTEMPTS = 5


@dataclass(frozen=True)
class TaskEvent:
    """What one task state change says: the task, its state, and its order (``version``)."""

    task_arn: str
    last_status: str
    version: int
    started_by: str
    task: dict[str, Any]

    @property
    def stopped(self) -> bool:
        """The task has stopped: its containers' exit codes and reasons are final."""
        return self.last_status == "STOPPED"


def from_body(body: Any) -> TaskEvent | None:
    """The task event in an SQS message body; None when the body is not an ECS event.

    >>> from_body('{"step": "check", "job_id": "7"}') is None
    True
    >>> from_body(json.dumps({"source": "aws.ecs", "detail-type": "ECS Task State Change",
    ...     "detail": {"taskArn": "arn:t", "lastStatus": "STOPPED", "version": 3}})).version
    3
    """
    try:
        event = json.loads(body) if isinstance(body, str | bytes) else None
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("detail-type") != DETAIL_TYPE:
        return None
    return parse_event(event)


def parse_event(event: dict[str, Any]) -> TaskEvent:
    """Read an EventBridge ECS task event; ``ValueError`` names the field that is wrong.

    >>> parse_event({"source": "aws.ecs", "detail-type": "ECS Task State Change",
    ...     "detail": {"taskArn": "arn:t", "lastStatus": "RUNNING"}})
    Traceback (most recent call last):
    ...
    ValueError: detail.version: must be a non-negative integer, got None
    """
    if event.get("source") != SOURCE:
        raise ValueError(f"source: must be {SOURCE!r}, got {event.get('source')!r}")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise ValueError("detail: must be an object")
    arn, status, version = detail.get("taskArn"), detail.get("lastStatus"), detail.get("version")
    if not isinstance(arn, str) or not arn:
        raise ValueError("detail.taskArn: must be a non-empty string")
    if not isinstance(status, str) or not status:
        raise ValueError("detail.lastStatus: must be a non-empty string")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"detail.version: must be a non-negative integer, got {version!r}")
    containers = detail.get("containers") or []
    if not isinstance(containers, list):
        raise ValueError("detail.containers: must be a list")
    task = {key: detail[key] for key in TASK_FIELDS if detail.get(key) is not None}
    task["containers"] = [
        {key: c[key] for key in CONTAINER_FIELDS if c.get(key) is not None}
        for c in containers
        if isinstance(c, dict)
    ]
    return TaskEvent(arn, status, version, str(detail.get("startedBy") or ""), task)


def handle(event: TaskEvent) -> StepOutcome:
    """Record the event on its job if it is the newest one; harvest the job if the task stopped.

    The outcome's result is ``not-ours`` (a task this project did not start),
    ``unknown-task`` (no running job has it: finished already, or another deployment's),
    ``stale`` (an event of this version or a later one was seen: a duplicate or out of
    order), ``recorded`` (not stopped yet), or the harvest's result.
    """
    if not event.started_by.startswith(STARTED_BY_PREFIX):
        return hints.answered("not-ours")
    job = hints.running_job(event.task_arn)
    if job is None:
        return hints.answered("unknown-task")
    if not _record(job, event):
        return hints.answered("stale")
    if not event.stopped:
        return hints.answered("recorded")
    executor = ExecutorFactory().get_executor(job)
    if hasattr(executor, "remember_task_event"):
        executor.remember_task_event(event.task)
    return hints.harvest_now(job.pk, "ECS")


def _record(job: Any, event: TaskEvent) -> bool:
    """Keep ``event`` in the job's metadata unless a version as new was kept; compare-and-set."""
    from container_manager.models import ContainerJob

    for _ in range(CAS_ATTEMPTS):
        metadata = job.executor_metadata or {}
        seen = metadata.get(METADATA_KEY) or {}
        if seen.get("taskArn") == event.task_arn and seen.get("version", -1) >= event.version:
            return False
        updated = ContainerJob.objects.filter(
            pk=job.pk, execution_id=event.task_arn, executor_metadata=metadata
        ).update(executor_metadata={**metadata, METADATA_KEY: event.task})
        if updated:
            return True
        job.refresh_from_db(fields=["executor_metadata", "execution_id"])
        if job.execution_id != event.task_arn:
            return False
    return False
