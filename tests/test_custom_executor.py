"""A new executor written against the interface, in under 100 lines, driven through the steps.

``LedgerExecutor`` "runs" a command by recording it; ``SeedStyleExecutor`` is the seed's style.
"""

import itertools
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from container_manager.executors.base import ContainerExecutor, LegacyExecutorAdapter
from container_manager.executors.types import (
    ConfigKey,
    ExecutionState,
    HarvestResult,
    LaunchRequest,
    Usage,
)
from container_manager.models import ContainerJob, ExecutorHost

pytestmark = pytest.mark.django_db(transaction=True)

EXECUTORS = {
    "ledger": "tests.test_custom_executor.LedgerExecutor",
    "seed": "tests.test_custom_executor.SeedStyleExecutor",
}


# --- the new executor: no ORM, only requests in and results out (under 100 lines) -------------
class LedgerExecutor(ContainerExecutor):
    """Keeps executions in a dict; each one 'prints' its command and environment and exits."""

    config_schema = (
        ConfigKey("exit_code", (int,), "Exit code of every execution.", default=0),
        ConfigKey("prefix", (str,), "Text before the output.", required=True),
    )
    capabilities = {**ContainerExecutor.capabilities, "supports_idempotent_launch": True}
    ledger: dict[str, LaunchRequest] = {}
    _ids = itertools.count(1)

    def launch_job(self, request: LaunchRequest) -> str:
        for execution_id, known in self.ledger.items():
            if known.launch_key == request.launch_key:
                return execution_id
        execution_id = f"ledger-{next(self._ids)}"
        self.ledger[execution_id] = request
        return execution_id

    def check_status(self, execution_id: str) -> ExecutionState:
        if execution_id in self.ledger:
            return ExecutionState.EXITED
        return ExecutionState.NOT_FOUND

    def get_logs(self, execution_id: str) -> tuple[str, str]:
        request = self.ledger[execution_id]
        return f"{self.config['prefix']} {' '.join(request.command or ())}\n", ""

    def harvest_job(self, execution_id: str) -> HarvestResult | None:
        if execution_id not in self.ledger:
            return None
        stdout, stderr = self.get_logs(execution_id)
        return HarvestResult(
            exit_code=self.config["exit_code"],
            stdout=stdout,
            stderr=stderr,
            platform_log=f"ledger execution {execution_id}",
            usage=Usage(memory_bytes=1024),
            finished_at=datetime.now(UTC),
        )

    def cleanup(self, execution_id: str) -> bool:
        self.ledger.pop(execution_id, None)
        return True


# --- the seed's style: reads and sets job fields, through the compatibility adapter -----------
class SeedStyleExecutor(LegacyExecutorAdapter):
    """``launch_job(job) -> (ok, id)`` and ``harvest_job(job) -> bool`` as in the seed."""

    def launch_job(self, job):
        return True, f"seed-{self.launch_key(job)}"

    def check_status(self, execution_id):
        return "exited"

    def get_logs(self, execution_id):
        return "seed output\n", ""

    def harvest_job(self, job):
        job.exit_code, (job.stdout_log, job.stderr_log) = 0, self.get_logs(job.execution_id)
        job.docker_log, job.completed_at = "seed style", datetime.now(UTC)
        return True

    def cleanup(self, execution_id):
        return True


@pytest.fixture
def executors(immediate, settings):
    settings.CONTAINER_MANAGER = {**immediate, "EXECUTORS": EXECUTORS}
    LedgerExecutor.ledger.clear()


def host(executor_type, **config):
    return ExecutorHost.objects.create(
        name=f"{executor_type}-host",
        executor_type=executor_type,
        connection_string=f"{executor_type}://here",
        executor_config=config,
    )


def test_new_executor_runs_a_job_through_the_steps(executors):
    job = ContainerJob.objects.create_job(
        image="any", command="echo 'hello world'", docker_host=host("ledger", prefix=">")
    )
    job.refresh_from_db()
    assert (job.status, job.exit_code) == ("completed", 0)
    assert job.stdout_log == "> echo hello world\n"
    assert job.docker_log.startswith("ledger execution ")
    assert job.max_memory_usage == 1024
    assert LedgerExecutor.ledger == {}  # cleaned up once the results were stored


def test_new_executor_nonzero_exit_fails_the_job(executors):
    job = ContainerJob.objects.create_job(
        image="any", command="false", docker_host=host("ledger", prefix="!", exit_code=2)
    )
    job.refresh_from_db()
    assert (job.status, job.last_error) == ("failed", "exited with code 2")


def test_declared_config_is_enforced_naming_the_key(executors):
    with pytest.raises(ValidationError, match=r"executor_config\['prefix'\]: required"):
        ExecutorHost(name="x", executor_type="ledger", executor_config={}).full_clean()
    with pytest.raises(ValidationError, match=r"executor_config\['exit_code'\]: expected int"):
        ExecutorHost(
            name="y", executor_type="ledger", executor_config={"prefix": "", "exit_code": "0"}
        ).full_clean()


def test_capabilities_are_enforced_at_submit(executors):
    target = host("ledger", prefix=">")
    with pytest.raises(ValidationError) as caught:
        ContainerJob.objects.create_job(image="any", docker_host=target, memory_limit=256)
    assert caught.value.message_dict["memory_limit"] == [
        "memory_limit: host 'ledger-host' (ledger) cannot limit memory"
    ]
    assert not ContainerJob.objects.exists()


def test_seed_style_executor_works_through_the_adapter(executors):
    job = ContainerJob.objects.create_job(image="any", command="true", docker_host=host("seed"))
    job.refresh_from_db()
    assert (job.status, job.exit_code, job.stdout_log) == ("completed", 0, "seed output\n")
    assert job.execution_id == f"seed-{job.pk.hex}-1"
