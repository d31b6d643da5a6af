"""Scaleway Serverless Jobs executor: each job attempt is one run of a job definition.

Speaks the Serverless Jobs API (v1alpha2) with the scaleway SDK, imported only here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from container_manager.executors import _cloud
from container_manager.executors.base import (
    EXITED,
    FAILED,
    NOT_FOUND,
    RUNNING,
    ContainerExecutor,
    parse_command,
    record_platform_times,
)
from container_manager.executors.exceptions import (
    ExecutorConfigurationError,
    ExecutorConnectionError,
    ExecutorError,
)

if TYPE_CHECKING:
    from container_manager.models import ContainerJob, ExecutorHost

logger = logging.getLogger(__name__)

NO_LOGS_NOTE = "Scaleway Serverless Jobs logs are in Cockpit; the Jobs API does not return them"

_CONFIG_SCHEMA: dict[str, tuple[tuple[type, ...], bool]] = {
    "job_definition_id": ((str,), True),
    "region": ((str,), True),
    "project_id": ((str,), False),
    "access_key": ((str,), False),
    "secret_key": ((str,), False),
    # Test and emulator key.
    "api_url": ((str,), False),
}
_STATES = {
    "succeeded": EXITED,
    "failed": FAILED,
    "interrupted": FAILED,
}


class ScalewayExecutor(_cloud.FindOrStart, ContainerExecutor):
    """Run jobs as runs of one existing Scaleway Serverless Jobs definition.

    ``host.executor_config`` keys: ``job_definition_id`` and ``region``
    (required); ``project_id``; ``access_key`` and ``secret_key`` (default:
    the SDK's config file and ``SCW_*`` environment variables); ``api_url``
    (tests and emulators only).

    A run can override the command's arguments and the environment, nothing
    else: image, CPU, memory and the platform timeout are the definition's.
    The API has no idempotency token and no labels, so the launch key goes
    in ``CM_LAUNCH_KEY`` and a retried launch looks for a run carrying it
    first. Logs live in Cockpit, which this executor does not read.
    """

    capabilities = {
        **ContainerExecutor.capabilities,
        "supports_secrets": True,
        "supports_scaling": True,
        "supports_idempotent_launch": True,
        "supports_logs": False,
        "supports_separate_stderr": False,
        "supports_platform_timeout": False,
        "supports_image_override": False,
    }

    def __init__(self, host: ExecutorHost):
        super().__init__(host)
        _cloud.validate_config(self.config, _CONFIG_SCHEMA, "scaleway")
        self._api: Any = None
        self._lock = threading.Lock()

    @property
    def api(self) -> Any:
        """The Serverless Jobs API client, built once for this host."""
        with self._lock:
            if self._api is None:
                self._api = self._build_api()
            return self._api

    def check_status(self, execution_id: str) -> str:
        run = self._get(execution_id)
        if run is None:
            return NOT_FOUND
        return _STATES.get(str(run.state), RUNNING)

    def get_logs(self, execution_id: str) -> tuple[str, str]:
        return "", ""

    def harvest_job(self, job: ContainerJob) -> bool:
        """Copy the run's state, exit code and times into ``job``; there are no logs to read."""
        run = self._get(job.execution_id)
        if run is None:
            return False
        state, reason = str(run.state), str(run.reason or "")
        # The SDK reads a missing exit code as 0: trust it only when the run says it exited.
        exited = state == "succeeded" or reason == "exited_with_error"
        job.exit_code = run.exit_code if exited else None
        job.stdout_log = job.stderr_log = job.clean_output = ""
        job.started_at = run.started_at or job.started_at
        record_platform_times(job, {
            "created_at": run.created_at, "started_at": run.started_at,
            "terminated_at": run.terminated_at,
        })  # fmt: skip
        job.completed_at = run.terminated_at or datetime.now(UTC)
        job.docker_log = (
            f"job run {run.id}: state={state} reason={reason} exit_code={job.exit_code}\n"
            f"{NO_LOGS_NOTE}"
        )
        if not exited and state not in ("interrupted", "interrupting"):
            job.last_error = f"Scaleway: {reason}: {run.error_message or 'no message'}"
        return True

    def stop(self, execution_id: str) -> bool:
        with self._scaleway_errors(f"stop of {execution_id}"):
            try:
                self.api.stop_job_run(job_run_id=execution_id, region=self.config["region"])
            except self._exception() as exc:
                if exc.status_code not in (404, 409, 412, 400):
                    raise
        return True

    def cleanup(self, execution_id: str) -> bool:
        """Stop the run if it still runs; Scaleway keeps finished runs itself."""
        if self.check_status(execution_id) == RUNNING:
            self.stop(execution_id)
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

    @contextmanager
    def _scaleway_errors(self, action: str) -> Iterator[None]:
        import requests

        try:
            yield
        except ExecutorError:
            raise
        except self._exception() as exc:
            status = exc.status_code or 0
            if status >= 500 or status == 429:
                raise ExecutorConnectionError(f"{action}: HTTP {status}: {exc}") from exc
            if status == 404:
                raise ExecutorConfigurationError(
                    f"{action}: job definition {self.config['job_definition_id']} not found",
                    key="job_definition_id",
                ) from exc
            raise ExecutorError(f"{action}: HTTP {status}: {exc}", retryable=False) from exc
        except requests.exceptions.RequestException as exc:
            raise ExecutorConnectionError(f"{action}: {exc}") from exc

    def find_execution(self, key: str) -> str | None:
        """The run of the definition carrying this launch key, if one was started."""
        with self._scaleway_errors("lookup of an earlier launch"):
            runs = self.api.list_job_runs_all(
                job_definition_id=self.config["job_definition_id"],
                region=self.config["region"],
                page_size=100,
            )
        for run in runs:
            if (run.environment_variables or {}).get(_cloud.LAUNCH_KEY_ENV) == key:
                return run.id
        return None

    def start_execution(self, job: ContainerJob, key: str) -> str:
        """Start a run of the definition with this attempt's args and environment."""
        environment = {**job.get_all_environment_variables(), _cloud.LAUNCH_KEY_ENV: key}
        with self._scaleway_errors(f"start of {self.config['job_definition_id']}"):
            response = self.api.start_job_definition(
                job_definition_id=self.config["job_definition_id"],
                region=self.config["region"],
                args=parse_command(job.command),
                environment_variables=environment,
                replicas=1,
            )
        if not response.job_runs:
            raise ExecutorConnectionError("Scaleway started no job run")
        return response.job_runs[0].id

    def _get(self, run_id: str) -> Any:
        with self._scaleway_errors(f"status of {run_id}"):
            try:
                return self.api.get_job_run(job_run_id=run_id, region=self.config["region"])
            except self._exception() as exc:
                if exc.status_code == 404:
                    return None
                raise
