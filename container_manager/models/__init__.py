"""Every model of the app, re-exported: ``from container_manager.models import ContainerJob``.

Each model lives in the module named for what it holds; Django registers them from here.
"""

from container_manager.executors.factory import executor_choices
from container_manager.models.environments import EnvironmentVariableTemplate
from container_manager.models.executions import ContainerExecution
from container_manager.models.hosts import ExecutorHost, ExecutorHostQuerySet, HostSlot
from container_manager.models.idempotency import IdempotencyKey
from container_manager.models.jobs import ContainerJob, default_max_attempts
from container_manager.models.labels import JobLabel
from container_manager.models.limits import RequestWindow
from container_manager.models.manager import JobManager, JobQuerySet
from container_manager.models.schedules import JobSchedule
from container_manager.models.tallies import JobTally
from container_manager.models.tokens import ApiToken, UsedSignature
from container_manager.models.webhooks import WebhookDelivery, WebhookEndpoint
from container_manager.models.workflow_resumes import WorkflowResume
from container_manager.models.workflow_runs import Workflow
from container_manager.models.workflows import ArrayCounts, JobDependency

__all__ = [
    "ApiToken",
    "ArrayCounts",
    "ContainerExecution",
    "ContainerJob",
    "EnvironmentVariableTemplate",
    "ExecutorHost",
    "ExecutorHostQuerySet",
    "HostSlot",
    "IdempotencyKey",
    "JobDependency",
    "JobLabel",
    "JobManager",
    "JobQuerySet",
    "JobSchedule",
    "JobTally",
    "RequestWindow",
    "UsedSignature",
    "WebhookDelivery",
    "WebhookEndpoint",
    "Workflow",
    "WorkflowResume",
    "default_max_attempts",
    "executor_choices",
]
