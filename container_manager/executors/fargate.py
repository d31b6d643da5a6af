"""AWS Fargate executor: each job attempt is one ECS task, its logs read from CloudWatch Logs.

Speaks ECS and CloudWatch Logs with boto3, imported only here.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import threading
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from container_manager.executors import _cloud, secretresolver
from container_manager.executors.base import (
    EXITED,
    FAILED,
    LABEL_MANAGED,
    RUNNING,
    ContainerExecutor,
)
from container_manager.executors.exceptions import (
    ExecutorConfigurationError,
    ExecutorConnectionError,
    ExecutorError,
)
from container_manager.executors.images import IMAGE_KEYS, PlatformImages
from container_manager.executors.types import (
    ConfigKey,
    ExecutionState,
    HarvestResult,
    LaunchRequest,
    known_times,
)
from container_manager.rules import secretrefs
from container_manager.rules.cost import fargate_size
from container_manager.rules.secretrefs import SecretRef

logger = logging.getLogger(__name__)

#: The task timestamps ECS reports, kept as the execution's platform times.
ECS_TIMES = ("createdAt", "pullStartedAt", "pullStoppedAt", "startedAt", "stoppingAt", "stoppedAt")

#: Prefix of ``startedBy``: it and the launch key find a task again after a crash.
STARTED_BY_PREFIX = "cm-"
STOP_REASON = "container_manager: stopped on timeout or cancel request"
#: How ECS's stop reasons begin when a container's image could not be pulled.
PULL_FAILURE = "CannotPullContainerError"
#: Task state change events kept per executor for the harvests of this process.
TASK_EVENTS_KEPT = 1000
#: Between the base family and the hash in the family of a definition that declares secrets.
SECRETS_FAMILY_INFIX = "-cm-"
#: What a definition that declares secrets copies from its base definition.
_DEFINITION_KEYS = (
    "taskRoleArn", "executionRoleArn", "networkMode", "volumes", "placementConstraints",
    "requiresCompatibilities", "cpu", "memory", "pidMode", "ipcMode", "proxyConfiguration",
    "inferenceAccelerators", "ephemeralStorage", "runtimePlatform",
)  # fmt: skip

_NOT_FINISHED = {
    "PROVISIONING", "PENDING", "ACTIVATING", "RUNNING", "DEACTIVATING", "STOPPING",
    "DEPROVISIONING",
}  # fmt: skip
_RETRYABLE_CODES = {
    "ThrottlingException", "ServerException", "ServiceUnavailableException",
    "LimitExceededException", "RequestLimitExceeded", "InternalFailure", "ServiceUnavailable",
}  # fmt: skip


class FargateExecutor(PlatformImages, _cloud.FindOrStart, ContainerExecutor):
    """Run jobs as ECS tasks on Fargate, from an existing task definition.

    ``host.executor_config`` keys:

    ``cluster`` (str, required): the ECS cluster name or ARN.
    ``task_definition`` (str, required): family, ``family:revision`` or ARN.
    ``image`` (str): the image of ``task_definition``'s container; ``images``
    (object): other images, each mapped to the task definition that runs it. A
    run cannot change the image: a job naming one neither names is refused at
    submit (``executors.images``), an empty one runs ``task_definition``.
    ``subnets`` (list of str, required), ``security_groups`` (list of str),
    ``assign_public_ip`` (bool, default False): the task's awsvpc network.
    ``container_name`` (str): the container the job's command and environment
    go to; default the task definition's first container.
    ``platform_version`` (str), ``region`` (str; default from the AWS chain),
    ``endpoint_url`` (str; moto or a VPC endpoint), ``log_wait_seconds``
    (number, default 10): how long after a task stopped a harvest waits for
    CloudWatch to ingest its last lines.

    Launches carry ``clientToken`` = launch key and ``startedBy`` =
    ``cm-<launch key>``; a retried launch first looks for a task started by
    that value, so it never starts a second one (moto ignores clientToken).
    Two launches of one key at once are one task too: ECS answers a repeated
    ``run_task`` with the token's task for 24 hours, and the task it names in a
    ``ConflictException`` (the token met other parameters) is adopted
    (``concurrent_launch_safe``).
    """

    config_schema = (
        ConfigKey("cluster", (str,), "ECS cluster name or ARN.", required=True),
        ConfigKey("task_definition", (str,), "Family, family:revision or ARN.", required=True),
        ConfigKey("subnets", (list,), "Subnet ids of the task's awsvpc network.", required=True),
        ConfigKey("security_groups", (list,), "Security group ids of the task."),
        ConfigKey("assign_public_ip", (bool,), "Give the task a public IP.", default=False),
        ConfigKey("container_name", (str,), "Container the overrides go to; default the first."),
        ConfigKey("platform_version", (str,), "Fargate platform version."),
        ConfigKey("region", (str,), "AWS region; default from the AWS chain."),
        ConfigKey("endpoint_url", (str,), "ECS/Logs endpoint (moto, VPC endpoint)."),
        ConfigKey(
            "log_wait_seconds", (int, float), "Seconds a harvest waits for CloudWatch.",
            default=_cloud.DEFAULT_LOG_WAIT_SECONDS,
        ),
        *IMAGE_KEYS,
    )  # fmt: skip
    capabilities = {
        **ContainerExecutor.capabilities,
        "supports_resource_limits": True,
        "supports_secrets": True,
        "supports_scaling": True,
        "supports_idempotent_launch": True,
        "supports_logs": True,
        # awslogs writes stdout and stderr to one stream: stderr_log stays empty.
        "supports_separate_stderr": False,
        # Read from CloudWatch Logs while it runs: lines appear after its ingestion delay.
        "supports_live_logs": True,
        "supports_platform_timeout": False,
        # The task definition's image: a run's container overrides cannot change it.
        "supports_image_override": False,
    }
    concurrent_launch_safe = True
    platform_job_key = "task_definition"
    platform_job_kind = "task definition"
    platform_secret_kinds = frozenset({secretrefs.AWS_SECRETS_MANAGER, secretrefs.AWS_SSM})

    def __init__(self, host: Any):
        super().__init__(host)
        for key in ("subnets", "security_groups"):
            if not all(isinstance(v, str) for v in self.config.get(key, [])):
                raise ExecutorConfigurationError(
                    f"executor_config[{key!r}]: expected a list of strings", key=key
                )
        self.cluster: str = self.config["cluster"]
        self._clients = _cloud.LazyClients(self._build_client)
        self._task_definitions: dict[str, dict[str, str]] = {}
        self._secret_definitions: dict[str, str] = {}
        self._task_events: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        """The boto3 client of ``service`` ("ecs" or "logs"), built once for this host."""
        return self._clients.get(service)

    def check_status(self, execution_id: str) -> ExecutionState:
        """RUNNING until ECS says STOPPED; then EXITED with an exit code, else FAILED.

        A task ECS no longer describes (about an hour after it stopped) is
        over with an unknown outcome: FAILED, and the harvest says why.
        """
        task = self._describe(execution_id)
        if task is None:
            return FAILED
        if task.get("lastStatus") in _NOT_FINISHED:
            return RUNNING
        return EXITED if self._container(task).get("exitCode") is not None else FAILED

    def get_logs(self, execution_id: str) -> tuple[str, str]:
        task = self._describe(execution_id)
        definition = task.get("taskDefinitionArn") if task else None
        return self._read_logs(execution_id, definition), ""

    def harvest_job(self, execution_id: str) -> HarvestResult | None:
        """Exit code, reasons, times and CloudWatch logs of the task; never guesses.

        The task is ECS's description of it, or the task state change event given to
        ``remember_task_event`` if that has a higher ``version``.
        """
        with self._lock:
            event = self._task_events.get(execution_id)
        task = newest_task_view(self._describe(execution_id), event)
        if task is None:
            return self._harvest_forgotten(execution_id)
        container = self._container(task)
        stopped = task.get("stoppedAt") or task.get("stoppingAt")
        wait = self.config.get("log_wait_seconds", _cloud.DEFAULT_LOG_WAIT_SECONDS)
        stdout = _cloud.settled_read(
            lambda: self._read_logs(execution_id, task.get("taskDefinitionArn")),
            stopped,
            wait if task.get("lastStatus") == "STOPPED" else 0,
        )
        return HarvestResult(
            exit_code=container.get("exitCode"),
            stdout=stdout,
            platform_log=_task_summary(task, container),
            created_at=task.get("createdAt"),
            started_at=task.get("startedAt"),
            finished_at=stopped or datetime.now(UTC),
            reason=_task_error(task, container),
            platform_times=known_times({name: task.get(name) for name in ECS_TIMES}),
        )

    def remember_task_event(self, task: dict[str, Any]) -> None:
        """Keep a task state change event's task (``detail``) for this process's harvests.

        A harvest right after the event reads it where ECS's description is older or gone.
        """
        with self._lock:
            kept = self._task_events.pop(task["taskArn"], None)
            if kept is not None and kept.get("version", 0) > task.get("version", 0):
                task = kept
            self._task_events[task["taskArn"]] = task
            while len(self._task_events) > TASK_EVENTS_KEPT:
                del self._task_events[next(iter(self._task_events))]

    def stop(self, execution_id: str) -> bool:
        """``stop_task``: ECS sends SIGTERM, then SIGKILL after the container's stopTimeout."""
        with self._aws_errors(f"stop of {execution_id}"):
            try:
                self.client("ecs").stop_task(
                    cluster=self.cluster, task=execution_id, reason=STOP_REASON
                )
            except self._errors().ClientError as exc:
                if "not found" not in str(exc).lower():
                    raise
        return True

    def ping(self) -> None:
        with self._aws_errors("ping"):
            self.client("ecs").describe_clusters(clusters=[self.cluster])

    # --- private helpers -------------------------------------------------------

    def _build_client(self, service: str) -> Any:
        import boto3
        import botocore.config

        config = botocore.config.Config(
            connect_timeout=5, read_timeout=20, retries={"max_attempts": 2, "mode": "standard"}
        )
        kwargs: dict[str, Any] = {"config": config}
        if self.config.get("region"):
            kwargs["region_name"] = self.config["region"]
        if self.config.get("endpoint_url"):
            kwargs["endpoint_url"] = self.config["endpoint_url"]
        try:
            return boto3.session.Session().client(service, **kwargs)
        except Exception as exc:  # noqa: BLE001 - botocore raises several types for bad setup
            raise ExecutorConfigurationError(
                f"executor_config['region']: cannot build the {service} client: {exc}",
                key="region",
            ) from exc

    @staticmethod
    def _errors() -> Any:
        import botocore.exceptions

        return botocore.exceptions

    def _aws_errors(self, action: str) -> AbstractContextManager[None]:
        return _cloud.sdk_errors(action, _aws_error)

    def find_execution(self, key: str, image: str = "") -> str | None:
        """The task this launch key started (running, else stopped), whatever its definition."""
        started_by = STARTED_BY_PREFIX + key
        ecs = self.client("ecs")
        with self._aws_errors("lookup of an earlier launch"):
            # list_tasks shows RUNNING tasks unless asked for STOPPED ones.
            for desired in ("RUNNING", "STOPPED"):
                found = ecs.list_tasks(
                    cluster=self.cluster, startedBy=started_by, desiredStatus=desired
                )["taskArns"]
                if found:
                    return found[0]
        return None

    def start_execution(self, launch: LaunchRequest) -> str:
        """Run the attempt's task with its overrides, ``clientToken`` and ``startedBy``."""
        key = launch.launch_key
        request = self._run_request(launch)
        with self._aws_errors(f"run_task of {key}"):
            try:
                response = self.client("ecs").run_task(**request)
            except self._errors().ClientError as exc:
                adopted = _token_task(exc)
                if adopted is None:
                    raise
                logger.info("run_task of %s: its client token names task %s", key, adopted)
                return adopted
        tasks = response.get("tasks") or []
        if tasks:
            return tasks[0]["taskArn"]
        reasons = "; ".join(
            f"{f.get('reason')}: {f.get('detail') or f.get('arn', '')}"
            for f in response.get("failures") or []
        )
        # Placement failures (capacity, ENI limits) pass; a missing definition does not.
        retryable = "MISSING" not in reasons
        message = f"ECS did not start the task: {reasons or 'no reason'}"
        raise ExecutorError(message, retryable=retryable)

    def _run_request(self, launch: LaunchRequest) -> dict[str, Any]:
        key = launch.launch_key
        environment, refs = secretresolver.platform_references(
            _cloud.environment(launch), self.platform_secret_kinds, self.platform_name()
        )
        base = self.platform_job_for(launch.image)
        definition = self._with_secrets(base, refs) if refs else base
        container: dict[str, Any] = {
            "name": self._container_name(definition),
            "environment": [{"name": k, "value": v} for k, v in environment.items()],
        }
        if launch.command:
            container["command"] = list(launch.command)
        overrides: dict[str, Any] = {"containerOverrides": [container]}
        size = fargate_size(launch.cpu_limit, launch.memory_limit_mb)
        if size:
            overrides["cpu"], overrides["memory"] = str(size[0]), str(size[1])
        network = {
            "subnets": self.config["subnets"],
            "assignPublicIp": "ENABLED" if self.config.get("assign_public_ip") else "DISABLED",
        }
        if self.config.get("security_groups"):
            network["securityGroups"] = self.config["security_groups"]
        request = {
            "cluster": self.cluster,
            "taskDefinition": definition,
            "launchType": "FARGATE",
            "count": 1,
            "clientToken": key,
            "startedBy": STARTED_BY_PREFIX + key,
            "tags": [{"key": k, "value": v} for k, v in launch.labels.items()],
            "networkConfiguration": {"awsvpcConfiguration": network},
            "overrides": overrides,
        }
        if self.config.get("platform_version"):
            request["platformVersion"] = self.config["platform_version"]
        return request

    def _describe(self, task_arn: str) -> dict[str, Any] | None:
        with self._aws_errors(f"describe of {task_arn}"):
            response = self.client("ecs").describe_tasks(cluster=self.cluster, tasks=[task_arn])
        tasks = response.get("tasks") or []
        return tasks[0] if tasks else None

    def _with_secrets(self, base_name: str, refs: dict[str, SecretRef]) -> str:
        """The ARN of a task definition whose container declares ``refs`` as its ``secrets``.

        A copy of the base definition (``base_name``: ``task_definition`` or the one
        ``images`` maps the job's image to) in the family
        ``<base family>-cm-<hash>``, the hash taken over the base revision's ARN and the
        names and ``valueFrom``s: the same set on the same base reuses the revision ECS has
        (one describe, then this process's cache), a changed base or set registers another.
        Two launches registering the same family at once make two equal revisions: harmless.
        """
        base = self._describe_definition(base_name)
        secrets = sorted((name, ref.value_from) for name, ref in refs.items())
        digest = hashlib.sha256(json.dumps([base["taskDefinitionArn"], secrets]).encode())
        family = f"{base['family'][:200]}{SECRETS_FAMILY_INFIX}{digest.hexdigest()[:16]}"
        cached = self._secret_definitions.get(family)
        if cached:
            return cached
        found = self._active_definition(family)
        if found is None:
            found = self._register_with_secrets(family, base, secrets)
        self._secret_definitions[family] = found
        return found

    def _active_definition(self, family: str) -> str | None:
        with self._aws_errors(f"describe of task definition {family}"):
            try:
                described = self.client("ecs").describe_task_definition(taskDefinition=family)
            except self._errors().ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ClientException":
                    return None  # no such family yet
                raise
        definition = described["taskDefinition"]
        return definition["taskDefinitionArn"] if definition.get("status") == "ACTIVE" else None

    def _register_with_secrets(
        self, family: str, base: dict[str, Any], secrets: list[tuple[str, str]]
    ) -> str:
        names = {name for name, _ in secrets}
        containers = copy.deepcopy(base["containerDefinitions"])
        wanted = self.config.get("container_name") or containers[0]["name"]
        for container in containers:
            if container["name"] == wanted:
                kept = [s for s in container.get("secrets", []) if s["name"] not in names]
                container["secrets"] = kept + [{"name": n, "valueFrom": v} for n, v in secrets]
                env = container.get("environment", [])
                container["environment"] = [e for e in env if e["name"] not in names]
        request = {key: base[key] for key in _DEFINITION_KEYS if base.get(key)}
        with self._aws_errors(f"registration of task definition {family}"):
            registered = self.client("ecs").register_task_definition(
                family=family,
                containerDefinitions=containers,
                tags=[{"key": LABEL_MANAGED, "value": "true"}],
                **request,
            )
        arn = registered["taskDefinition"]["taskDefinitionArn"]
        logger.info("registered task definition %s declaring secrets %s", arn, sorted(names))
        return arn

    def _describe_definition(self, name: str) -> dict[str, Any]:
        """ECS's description of a task definition; one it cannot read is a configuration error."""
        with self._aws_errors(f"describe of task definition {name}"):
            try:
                described = self.client("ecs").describe_task_definition(taskDefinition=name)
            except self._errors().ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ClientException":
                    raise ExecutorConfigurationError(
                        f"executor_config['task_definition']: {name!r} cannot be read: {exc}",
                        key="task_definition",
                    ) from exc
                raise
        return described["taskDefinition"]

    def _task_definition(self, name: str) -> dict[str, str]:
        """Container name and awslogs settings of a task definition, cached per name."""
        cached = self._task_definitions.get(name)
        if cached:
            return cached
        containers = self._describe_definition(name)["containerDefinitions"]
        wanted = self.config.get("container_name") or containers[0]["name"]
        chosen = next((c for c in containers if c["name"] == wanted), None)
        if chosen is None:
            raise ExecutorConfigurationError(
                f"executor_config['container_name']: no container {wanted!r} in {name!r}",
                key="container_name",
            )
        log = chosen.get("logConfiguration") or {}
        options = log.get("options") or {} if log.get("logDriver") == "awslogs" else {}
        info = {
            "container": wanted,
            "group": options.get("awslogs-group", ""),
            "prefix": options.get("awslogs-stream-prefix", ""),
        }
        self._task_definitions[name] = info
        return info

    def _container_name(self, task_definition: str) -> str:
        return self._task_definition(task_definition)["container"]

    def _container(self, task: dict[str, Any]) -> dict[str, Any]:
        containers = task.get("containers") or [{}]
        wanted = self.config.get("container_name")
        if not wanted:
            wanted = self._container_name(task.get("taskDefinitionArn") or "")
        return next((c for c in containers if c.get("name") == wanted), containers[0])

    def _read_logs(self, task_arn: str, task_definition: str | None) -> str:
        info = self._task_definition(task_definition or self.config["task_definition"])
        if not info["group"] or not info["prefix"]:
            return ""
        stream = f"{info['prefix']}/{info['container']}/{task_arn.rsplit('/', 1)[-1]}"
        return _cloud.log_text(self._log_events(info["group"], stream))

    def _log_events(self, group: str, stream: str) -> list[tuple[datetime, str]]:
        logs, lines, token = self.client("logs"), [], None
        with self._aws_errors(f"logs of {stream}"):
            while True:
                kwargs = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
                if token:
                    kwargs["nextToken"] = token
                try:
                    page = logs.get_log_events(**kwargs)
                except logs.exceptions.ResourceNotFoundException:
                    return []
                lines += [
                    (datetime.fromtimestamp(e["timestamp"] / 1000, tz=UTC), e["message"])
                    for e in page.get("events", [])
                ]
                # The forward token stays the same once the end of the stream is reached.
                if page.get("nextForwardToken") in (None, token):
                    return lines
                token = page["nextForwardToken"]

    def _harvest_forgotten(self, execution_id: str) -> HarvestResult:
        return HarvestResult(
            stdout=self._read_logs(execution_id, None),
            platform_log=f"task {execution_id}: not described by ECS any more",
            reason=(
                f"ECS no longer describes task {execution_id} (it keeps stopped tasks about "
                "an hour): exit code unknown, logs read from CloudWatch"
            ),
        )


def newest_task_view(
    described: dict[str, Any] | None, event: dict[str, Any] | None
) -> dict[str, Any] | None:
    """ECS's description of a task, or a state change event about it if that is newer.

    Both carry the task's ``version``; an event's times are ISO strings, read into datetimes,
    and what it lacks is taken from the description.
    """
    if not event:
        return described
    if described is not None and described.get("version", 0) >= event.get("version", 0):
        return described
    times = ("startedAt", "stoppingAt", "stoppedAt")
    newer = {**event, **{key: _iso_time(event[key]) for key in times if event.get(key)}}
    return {**(described or {}), **newer}


def _iso_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _aws_error(action: str, exc: Exception) -> ExecutorError | None:
    """A botocore error as an executor error: throttling and 5xx retryable, bad setup config."""
    import botocore.exceptions as errors

    if isinstance(exc, errors.NoCredentialsError | errors.NoRegionError):
        return ExecutorConfigurationError(f"{action}: {exc}", key="region")
    if isinstance(exc, errors.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _RETRYABLE_CODES or status >= 500:
            return ExecutorConnectionError(f"{action}: {exc}")
        return ExecutorError(f"{action}: {exc}", retryable=False)
    if isinstance(exc, errors.BotoCoreError):
        return ExecutorConnectionError(f"{action}: {exc}")
    return None


def _token_task(exc: Exception) -> str | None:
    """The task ARN a ``ConflictException`` says the client token already started, if any."""
    response = getattr(exc, "response", {})
    if response.get("Error", {}).get("Code") != "ConflictException":
        return None
    return next(iter(response.get("resourceIds") or ()), None)


def _task_summary(task: dict[str, Any], container: dict[str, Any]) -> str:
    return (
        f"task {task.get('taskArn')}: lastStatus={task.get('lastStatus')} "
        f"stopCode={task.get('stopCode')} exitCode={container.get('exitCode')}\n"
        f"startedAt={task.get('startedAt')} stoppedAt={task.get('stoppedAt')} "
        f"stoppedReason={task.get('stoppedReason') or ''}"
    )


def _task_error(task: dict[str, Any], container: dict[str, Any]) -> str:
    """Why ECS stopped the task, when the exit code alone does not say (or is missing).

    A container whose image ECS could not pull (``CannotPullContainerError``: the image
    or tag does not exist, access was denied, the registry did not answer) names the
    image, as ``describe_tasks`` and the task state change events give it.
    """
    # The task's and the container's reason are often the same text: say it once.
    reasons = list(
        dict.fromkeys(r for r in (task.get("stoppedReason"), container.get("reason")) if r)
    )
    stop_code = task.get("stopCode")
    ordinary = stop_code in (None, "EssentialContainerExited", "UserInitiated")
    if container.get("exitCode") is not None and ordinary and not container.get("reason"):
        return ""
    error = f"ECS {stop_code or 'stopped the task'}: {'; '.join(reasons) or 'no reason given'}"
    image = container.get("image")
    if image and any(reason.startswith(PULL_FAILURE) for reason in reasons):
        return _cloud.pull_failure(image, error)
    return error
