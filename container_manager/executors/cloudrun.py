"""Google Cloud Run Jobs executor: each job attempt is one execution of a Cloud Run job.

Speaks Cloud Run v2 and Cloud Logging with the google-cloud clients, imported only here.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from container_manager.executors import _cloud, secretresolver
from container_manager.executors.base import (
    EXITED,
    FAILED,
    NOT_FOUND,
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

logger = logging.getLogger(__name__)

#: Seconds added to the job's timeout for Cloud Run's own limit: the check step stops a job at
#: its deadline; the platform limit only catches jobs whose checks stopped coming.
DEFAULT_TIMEOUT_MARGIN_SECONDS = 60

#: Condition reasons (``Condition.CommonReason``) saying the execution's image could not be
#: pulled: its path names no image, or the job's service agent may not read it.
_IMAGE_REASONS = frozenset({"CONTAINER_MISSING", "CONTAINER_PERMISSION_DENIED"})

_RETRYABLE = (
    "ServiceUnavailable", "InternalServerError", "TooManyRequests", "DeadlineExceeded",
    "GatewayTimeout", "Aborted", "BadGateway", "ResourceExhausted", "RetryError",
)  # fmt: skip


class CloudRunExecutor(PlatformImages, _cloud.FindOrStart, ContainerExecutor):
    """Run jobs as executions of one existing Cloud Run job, with per-run overrides.

    ``host.executor_config`` keys: ``project``, ``region``, ``job`` (all
    required: the Cloud Run job that holds the image); ``container_name``
    (the container the overrides go to, needed for multi-container jobs);
    ``credentials_file`` (service account JSON; default: application default
    credentials); ``log_wait_seconds`` (default 10) and
    ``timeout_margin_seconds`` (default 60). For tests and emulators:
    ``api_endpoint`` and ``logging_endpoint`` (``http://`` URLs, REST
    transport) and ``anonymous_credentials`` (bool).

    The image is the Cloud Run job's: a run can override args, environment,
    timeout and task count, not the image or the resources. ``image`` names the
    image ``job`` runs and ``images`` maps other images to other Cloud Run jobs
    of the project and region; a job naming an image neither names is refused at
    submit (``executors.images``), an empty one runs ``job``. The launch key
    goes in the ``CM_LAUNCH_KEY`` environment variable, and a retried launch
    looks for an execution carrying it before running the job again. ``run_job``
    takes no request id, so two launches of one key at once could both find
    nothing and start two executions: a quiet launch is taken over only once its
    lease has expired (``concurrent_launch_safe`` is False).

    A Secret Manager reference becomes a secret environment variable of the run's override
    (``EnvVar.value_source.secret_key_ref``): Cloud Run reads the value with the job's
    service account, and it never passes through this process.
    """

    config_schema = (
        ConfigKey("project", (str,), "Google Cloud project id.", required=True),
        ConfigKey("region", (str,), "Region of the Cloud Run job.", required=True),
        ConfigKey("job", (str,), "Name of the Cloud Run job that holds the image.", required=True),
        ConfigKey("container_name", (str,), "Container the overrides go to (multi-container)."),
        ConfigKey("credentials_file", (str,), "Service account JSON; default: ADC."),
        ConfigKey(
            "log_wait_seconds", (int, float), "Seconds a harvest waits for logs.",
            default=_cloud.DEFAULT_LOG_WAIT_SECONDS,
        ),
        ConfigKey(
            "timeout_margin_seconds", (int,), "Added to the job's timeout for Cloud Run's limit.",
            default=DEFAULT_TIMEOUT_MARGIN_SECONDS,
        ),
        ConfigKey("api_endpoint", (str,), "Cloud Run REST endpoint (tests, emulators)."),
        ConfigKey("logging_endpoint", (str,), "Cloud Logging endpoint (tests, emulators)."),
        ConfigKey("anonymous_credentials", (bool,), "No credentials (tests, emulators)."),
        *IMAGE_KEYS,
    )  # fmt: skip
    capabilities = {
        **ContainerExecutor.capabilities,
        "supports_secrets": True,
        "supports_scaling": True,
        "supports_idempotent_launch": True,
        "supports_logs": True,
        "supports_separate_stderr": True,
        # Read from Cloud Logging while it runs: lines appear after its ingestion delay.
        "supports_live_logs": True,
        "supports_platform_timeout": True,
        # Image, CPU and memory are the Cloud Run job's; a run cannot change them.
        "supports_image_override": False,
    }
    platform_secret_kinds = frozenset({secretrefs.GCP_SECRET_MANAGER})
    platform_job_key = "job"
    platform_job_kind = "Cloud Run job"

    def __init__(self, host: Any):
        super().__init__(host)
        self.job_name = self._job_path(self.config["job"])
        self._clients = _cloud.LazyClients(self._build_client)

    def client(self, kind: str) -> Any:
        """The ``jobs``, ``executions``, ``tasks`` or ``logging`` client, built once."""
        return self._clients.get(kind)

    def check_status(self, execution_id: str) -> ExecutionState:
        """From the execution's counts: RUNNING until it completed, then EXITED or FAILED."""
        execution = self._get(execution_id)
        if execution is None:
            return NOT_FOUND
        if not _finished(execution):
            return RUNNING
        return EXITED if execution.succeeded_count >= max(execution.task_count, 1) else FAILED

    def get_logs(self, execution_id: str) -> tuple[str, str]:
        execution = self._get(execution_id)
        since = _time(execution.create_time) if execution else None
        return self._read_logs(execution_id, since)

    def harvest_job(self, execution_id: str) -> HarvestResult | None:
        """Exit code, times, conditions and Cloud Logging lines of the execution."""
        execution = self._get(execution_id)
        if execution is None:
            return None
        finished = _finished(execution)
        ended = _time(execution.completion_time)
        wait = self.config.get("log_wait_seconds", _cloud.DEFAULT_LOG_WAIT_SECONDS)
        stdout, stderr = _cloud.settled_read(
            lambda: self._read_logs(execution_id, _time(execution.create_time)),
            ended,
            wait if finished else 0,
        )
        result = self._task_result(execution_id)
        return HarvestResult(
            exit_code=result.get("exit_code"),
            stdout=stdout,
            stderr=stderr,
            platform_log=_summary(execution, result),
            created_at=_time(execution.create_time),
            started_at=_time(execution.start_time),
            finished_at=ended or datetime.now(UTC),
            reason=_execution_error(execution, result, self._image(execution)),
            platform_times=known_times(
                {
                    "createTime": _time(execution.create_time),
                    "startTime": _time(execution.start_time),
                    "completionTime": ended,
                }
            ),  # fmt: skip
        )

    def stop(self, execution_id: str) -> bool:
        """Cancel the execution; the operation is not waited for."""
        with self._google_errors(f"cancel of {execution_id}"):
            try:
                self.client("executions").cancel_execution(name=execution_id)
            except self._api().NotFound:
                return True
            except self._api().FailedPrecondition:
                return True  # it already finished
        return True

    def ping(self) -> None:
        with self._google_errors("ping"):
            self.client("jobs").get_job(name=self.job_name)

    # --- private helpers -------------------------------------------------------

    def _build_client(self, kind: str) -> Any:
        credentials = self._credentials()
        if kind == "logging":
            from google.cloud import logging as cloud_logging

            options = {}
            if self.config.get("logging_endpoint"):
                options["api_endpoint"] = self.config["logging_endpoint"]
            return cloud_logging.Client(
                project=self.config["project"],
                credentials=credentials,
                _use_grpc=False,
                client_options=options or None,
            )
        from google.cloud import run_v2

        classes = {
            "jobs": run_v2.JobsClient,
            "executions": run_v2.ExecutionsClient,
            "tasks": run_v2.TasksClient,
        }
        kwargs: dict[str, Any] = {"credentials": credentials}
        if self.config.get("api_endpoint"):
            kwargs["transport"] = "rest"
            kwargs["client_options"] = {"api_endpoint": self.config["api_endpoint"]}
        return classes[kind](**kwargs)

    def _credentials(self) -> Any:
        if self.config.get("anonymous_credentials"):
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()
        path = self.config.get("credentials_file")
        if not path:
            return None
        from google.oauth2 import service_account

        try:
            return service_account.Credentials.from_service_account_file(
                path, scopes=["https://www.googleapis.com/auth/cloud-platform"]
            )
        except (OSError, ValueError) as exc:
            raise ExecutorConfigurationError(
                f"executor_config['credentials_file']: cannot read {path}: {exc}",
                key="credentials_file",
            ) from exc

    @staticmethod
    def _api() -> Any:
        from google.api_core import exceptions

        return exceptions

    def _google_errors(self, action: str) -> AbstractContextManager[None]:
        return _cloud.sdk_errors(action, self._classify)

    def _classify(self, action: str, exc: Exception) -> ExecutorError | None:
        import google.auth.exceptions
        import requests

        api = self._api()
        if isinstance(exc, api.NotFound):
            return ExecutorConfigurationError(
                f"{action}: Cloud Run job not found: {exc}", key="job"
            )
        if isinstance(exc, api.GoogleAPICallError):
            if type(exc).__name__ in _RETRYABLE:
                return ExecutorConnectionError(f"{action}: {exc}")
            return ExecutorError(f"{action}: {exc}", retryable=False)
        if isinstance(exc, requests.exceptions.RequestException | api.RetryError):
            return ExecutorConnectionError(f"{action}: {exc}")
        if isinstance(exc, google.auth.exceptions.DefaultCredentialsError):
            return ExecutorConfigurationError(
                f"{action}: no Google credentials: {exc}", key="credentials_file"
            )
        if isinstance(exc, google.auth.exceptions.GoogleAuthError):
            return ExecutorConnectionError(f"{action}: {exc}")
        return None

    def find_execution(self, key: str, image: str = "") -> str | None:
        """The execution of ``image``'s Cloud Run job whose container carries this launch key."""
        parent = self._job_path(self.platform_job_for(image))
        with self._google_errors("lookup of an earlier launch"):
            for execution in self.client("executions").list_executions(parent=parent):
                for container in execution.template.containers:
                    env = {e.name: e.value for e in container.env}
                    if env.get(_cloud.LAUNCH_KEY_ENV) == key:
                        return execution.name
        return None

    def start_execution(self, launch: LaunchRequest) -> str:
        """Run the job with this attempt's overrides; never waits for the operation."""
        from google.cloud import run_v2

        environment, refs = secretresolver.platform_references(
            _cloud.environment(launch), self.platform_secret_kinds, self.platform_name()
        )
        override = run_v2.RunJobRequest.Overrides.ContainerOverride(
            env=[run_v2.EnvVar(name=k, value=v) for k, v in environment.items()]
            + [_secret_env(name, ref) for name, ref in refs.items()],
        )
        if self.config.get("container_name"):
            override.name = self.config["container_name"]
        if launch.command:
            override.args = list(launch.command)
        margin = self.config.get("timeout_margin_seconds", DEFAULT_TIMEOUT_MARGIN_SECONDS)
        job_name = self._job_path(self.platform_job_for(launch.image))
        request = run_v2.RunJobRequest(
            name=job_name,
            overrides=run_v2.RunJobRequest.Overrides(
                container_overrides=[override],
                task_count=1,
                timeout=timedelta(seconds=launch.timeout_seconds + margin),
            ),
        )
        with self._google_errors(f"run of {job_name}"):
            operation = self.client("jobs").run_job(request=request)
            # The operation ends with the execution; its metadata names it at once.
            name = operation.metadata.name if operation.metadata else ""
        if not name:
            raise ExecutorConnectionError(f"run of {job_name}: no execution name returned")
        return name

    def _job_path(self, job: str) -> str:
        return f"projects/{self.config['project']}/locations/{self.config['region']}/jobs/{job}"

    def _get(self, execution_id: str) -> Any:
        with self._google_errors(f"status of {execution_id}"):
            try:
                return self.client("executions").get_execution(name=execution_id)
            except self._api().NotFound:
                return None

    def _image(self, execution: Any) -> str:
        """The image of the execution's container (the one the overrides go to)."""
        containers = list(execution.template.containers)
        wanted = self.config.get("container_name")
        chosen = next((c for c in containers if c.name == wanted), None) if wanted else None
        return (chosen or containers[0]).image if containers else ""

    def _task_result(self, execution_id: str) -> dict[str, Any]:
        with self._google_errors(f"tasks of {execution_id}"):
            try:
                tasks = list(self.client("tasks").list_tasks(parent=execution_id))
            except self._api().NotFound:
                return {}
        for task in sorted(tasks, key=lambda t: t.index):
            if "last_attempt_result" in task:
                result = task.last_attempt_result
                return {
                    "exit_code": result.exit_code,
                    "message": result.status.message if result.status else "",
                    "task": task.name,
                }
        return {}

    def _read_logs(self, execution_id: str, since: datetime | None) -> tuple[str, str]:
        short = execution_id.rsplit("/", 1)[-1]
        # The execution's name holds its job's: ".../jobs/<job>/executions/<short>".
        job = execution_id.partition("/jobs/")[2].partition("/")[0] or self.config["job"]
        query = (
            f'resource.type="cloud_run_job" AND resource.labels.job_name="{job}" '
            f'AND labels."run.googleapis.com/execution_name"="{short}"'
        )
        if since:
            # Without a time bound, entries:list looks only at the last 24 hours.
            query += f' AND timestamp>="{(since - timedelta(minutes=1)).isoformat()}"'
        out: list[tuple[datetime | None, str]] = []
        err: list[tuple[datetime | None, str]] = []
        from google.cloud import logging as cloud_logging

        with self._google_errors(f"logs of {execution_id}"):
            entries = self.client("logging").list_entries(
                resource_names=[f"projects/{self.config['project']}"],
                filter_=query,
                order_by=cloud_logging.ASCENDING,
                page_size=1000,
            )
            for entry in entries:
                line = (entry.timestamp, _payload_text(entry.payload))
                (err if (entry.log_name or "").endswith("stderr") else out).append(line)
        return _cloud.log_text(out), _cloud.log_text(err)


def _secret_env(name: str, ref: secretrefs.SecretRef) -> Any:
    """A variable Cloud Run sets from Secret Manager: it names the secret, it holds no value."""
    from google.cloud import run_v2

    selector = run_v2.SecretKeySelector(secret=ref.secret_id, version=ref.version)
    return run_v2.EnvVar(name=name, value_source=run_v2.EnvVarSource(secret_key_ref=selector))


def _finished(execution: Any) -> bool:
    done = execution.succeeded_count + execution.failed_count + execution.cancelled_count
    return bool(_time(execution.completion_time)) or done >= max(execution.task_count, 1)


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return None if value.year <= 1970 else value


def _payload_text(payload: Any) -> str:
    if isinstance(payload, dict):
        return str(payload.get("message", payload))
    return str(payload or "")


def _summary(execution: Any, result: dict[str, Any]) -> str:
    return (
        f"execution {execution.name}: succeeded={execution.succeeded_count} "
        f"failed={execution.failed_count} cancelled={execution.cancelled_count} "
        f"exit_code={result.get('exit_code')}\n"
        f"started_at={_time(execution.start_time)} completed_at={_time(execution.completion_time)}"
    )


def _execution_error(execution: Any, result: dict[str, Any], image: str) -> str:
    """Why it failed, when no exit code says it (it never started, or was killed).

    An execution whose image could not be pulled (a condition's reason says so) names
    ``image``, the image of its container.
    """
    if execution.cancelled_count or result.get("exit_code") is not None:
        return ""  # the cancel or timeout step, or the exit code, says why
    messages = [c.message for c in execution.conditions if c.message]
    if result.get("message"):
        messages.append(result["message"])
    error = f"Cloud Run: {'; '.join(messages) or 'the execution failed without an exit code'}"
    reasons = {getattr(c.reason, "name", "") for c in execution.conditions}
    if image and reasons & _IMAGE_REASONS:
        return _cloud.pull_failure(image, error)
    return error
