"""Scaleway Serverless Jobs executor: each job attempt is one run of a job definition.

Speaks the Serverless Jobs API (v1alpha2) with the scaleway SDK, imported only here.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from datetime import UTC, datetime
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

logger = logging.getLogger(__name__)

#: The run's ``reason`` when the definition's image could not be found.
IMAGE_NOT_FOUND = "image_not_found"
NO_LOGS_NOTE = "Scaleway Serverless Jobs logs are in Cockpit; the Jobs API does not return them"

_STATES = {
    "succeeded": EXITED,
    "failed": FAILED,
    "interrupted": FAILED,
}


class ScalewayExecutor(PlatformImages, _cloud.FindOrStart, ContainerExecutor):
    """Run jobs as runs of one existing Scaleway Serverless Jobs definition.

    ``host.executor_config`` keys: ``job_definition_id`` and ``region``
    (required); ``project_id``; ``access_key`` and ``secret_key`` (default:
    the SDK's config file and ``SCW_*`` environment variables); ``api_url``
    (tests and emulators only).

    A run can override the command's arguments and the environment, nothing
    else: image, CPU, memory and the platform timeout are the definition's.
    ``image`` names the image of ``job_definition_id`` and ``images`` maps other
    images to other definitions (ids); a job naming an image neither names is
    refused at submit (``executors.images``), an empty one runs the default.
    The API has no idempotency token and no labels, so the launch key goes
    in ``CM_LAUNCH_KEY`` and a retried launch looks for a run carrying it
    first; two launches of one key at once could start two runs, so a quiet
    launch is taken over only once its lease has expired (``concurrent_launch_safe``
    is False). Logs live in Cockpit, which this executor does not read.

    Secret references are resolved in the worker at launch (``SECRET_RESOLVER``) and sent
    as the run's environment values; Scaleway keeps them with the run, in its API.
    """

    config_schema = (
        ConfigKey("job_definition_id", (str,), "The job definition runs start.", required=True),
        ConfigKey("region", (str,), "Region of the job definition.", required=True),
        ConfigKey("project_id", (str,), "Project id; default: the SDK's."),
        ConfigKey("access_key", (str,), "API access key; default: the SDK's config."),
        ConfigKey("secret_key", (str,), "API secret key; default: the SDK's config."),
        ConfigKey("api_url", (str,), "API URL (tests, emulators)."),
        *IMAGE_KEYS,
    )
    capabilities = {
        **ContainerExecutor.capabilities,
        "supports_secrets": True,
        "supports_scaling": True,
        "supports_idempotent_launch": True,
        "supports_logs": False,
        "supports_separate_stderr": False,
        "supports_live_logs": False,
        "supports_platform_timeout": False,
        "supports_image_override": False,
    }
    #: Secret references are resolved in the worker and passed to the run as values.
    resolves_secrets = True
    platform_job_key = "job_definition_id"
    platform_job_kind = "job definition"

    def __init__(self, host: Any):
        super().__init__(host)
        self._clients = _cloud.LazyClients(lambda _kind: self._build_api())

    @property
    def api(self) -> Any:
        """The Serverless Jobs API client, built once for this host."""
        return self._clients.get("jobs")

    def check_status(self, execution_id: str) -> ExecutionState:
        run = self._get(execution_id)
        if run is None:
            return NOT_FOUND
        return _STATES.get(str(run.state), RUNNING)

    def get_logs(self, execution_id: str) -> tuple[str, str]:
        return "", ""

    def harvest_job(self, execution_id: str) -> HarvestResult | None:
        """The run's state, exit code and times; there are no logs to read.

        A run that failed because its image was not found names the definition's image.
        """
        run = self._get(execution_id)
        if run is None:
            return None
        state, reason = str(run.state), str(run.reason or "")
        # The SDK reads a missing exit code as 0: trust it only when the run says it exited.
        exited = state == "succeeded" or reason == "exited_with_error"
        exit_code = run.exit_code if exited else None
        failure = ""
        if not exited and state not in ("interrupted", "interrupting"):
            failure = f"Scaleway: {reason}: {run.error_message or 'no message'}"
        if reason == IMAGE_NOT_FOUND:
            failure = _cloud.pull_failure(self._image(run.job_definition_id), failure)
        return HarvestResult(
            exit_code=exit_code,
            platform_log=(
                f"job run {run.id}: state={state} reason={reason} exit_code={exit_code}\n"
                f"{NO_LOGS_NOTE}"
            ),
            clean_output="",
            created_at=getattr(run, "created_at", None),
            started_at=run.started_at,
            finished_at=run.terminated_at or datetime.now(UTC),
            reason=failure,
            platform_times=known_times(
                {
                    "created_at": getattr(run, "created_at", None),
                    "started_at": run.started_at,
                    "terminated_at": run.terminated_at,
                }
            ),  # fmt: skip
        )

    def stop(self, execution_id: str) -> bool:
        with self._scaleway_errors(f"stop of {execution_id}"):
            try:
                self.api.stop_job_run(job_run_id=execution_id, region=self.config["region"])
            except self._exception() as exc:
                if exc.status_code not in (404, 409, 412, 400):
                    raise
        return True

    def ping(self) -> None:
        with self._scaleway_errors("ping"):
            self.api.get_job_definition(
                job_definition_id=self.config["job_definition_id"], region=self.config["region"]
            )

    # --- private helpers -------------------------------------------------------

    def _build_api(self) -> Any:
        from scaleway import Client
        from scaleway.jobs.v1alpha2 import JobsV1Alpha2API

        cfg = self.config
        try:
            if cfg.get("access_key") or cfg.get("secret_key"):
                client = Client(
                    access_key=cfg.get("access_key"),
                    secret_key=cfg.get("secret_key"),
                    default_project_id=cfg.get("project_id"),
                    default_region=cfg["region"],
                )
            else:
                client = Client.from_config_file_and_env()
                client.default_region = cfg["region"]
                client.default_project_id = cfg.get("project_id") or client.default_project_id
            if cfg.get("api_url"):
                client.api_url = cfg["api_url"]
            return JobsV1Alpha2API(client)
        except ValueError as exc:
            raise ExecutorConfigurationError(
                f"executor_config['access_key']: Scaleway credentials rejected: {exc}",
                key="access_key",
            ) from exc

    @staticmethod
    def _exception() -> type[Exception]:
        from scaleway_core.api import ScalewayException

        return ScalewayException

    def _scaleway_errors(self, action: str) -> AbstractContextManager[None]:
        return _cloud.sdk_errors(action, self._classify)

    def _classify(self, action: str, exc: Exception) -> ExecutorError | None:
        import requests

        if isinstance(exc, self._exception()):
            status = exc.status_code or 0
            if status >= 500 or status == 429:
                return ExecutorConnectionError(f"{action}: HTTP {status}: {exc}")
            if status == 404:
                return ExecutorConfigurationError(
                    f"{action}: job definition {self.config['job_definition_id']} not found",
                    key="job_definition_id",
                )
            return ExecutorError(f"{action}: HTTP {status}: {exc}", retryable=False)
        if isinstance(exc, requests.exceptions.RequestException):
            return ExecutorConnectionError(f"{action}: {exc}")
        return None

    def find_execution(self, key: str, image: str = "") -> str | None:
        """The run of ``image``'s definition carrying this launch key, if one was started."""
        with self._scaleway_errors("lookup of an earlier launch"):
            runs = self.api.list_job_runs_all(
                job_definition_id=self.platform_job_for(image),
                region=self.config["region"],
                page_size=100,
            )
        for run in runs:
            if (run.environment_variables or {}).get(_cloud.LAUNCH_KEY_ENV) == key:
                return run.id
        return None

    def start_execution(self, launch: LaunchRequest) -> str:
        """Start a run of the definition with this attempt's args and environment."""
        # Secret references become values in this dict only, handed to the run.
        environment = secretresolver.resolve_environment(
            _cloud.environment(launch), self.platform_name()
        )
        definition = self.platform_job_for(launch.image)
        with self._scaleway_errors(f"start of {definition}"):
            response = self.api.start_job_definition(
                job_definition_id=definition,
                region=self.config["region"],
                args=list(launch.command) if launch.command else None,
                environment_variables=environment,
                replicas=1,
            )
        if not response.job_runs:
            raise ExecutorConnectionError("Scaleway started no job run")
        return response.job_runs[0].id

    def _image(self, definition_id: str) -> str:
        """The job definition's image (``image_uri``): runs cannot override it."""
        with self._scaleway_errors(f"read of {definition_id}"):
            definition = self.api.get_job_definition(
                job_definition_id=definition_id or self.config["job_definition_id"],
                region=self.config["region"],
            )
        return definition.image_uri

    def _get(self, run_id: str) -> Any:
        with self._scaleway_errors(f"status of {run_id}"):
            try:
                return self.api.get_job_run(job_run_id=run_id, region=self.config["region"])
            except self._exception() as exc:
                if exc.status_code == 404:
                    return None
                raise
