"""Create a sample host, an environment template and a few jobs, to try the admin and the processor.

Jobs stay pending for ``process_container_jobs`` unless ``--run`` runs them in this process.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from container_manager import dispatch
from container_manager.dispatch.local import LocalBackend
from container_manager.management._support import (
    DOCKER_SOCKET,
    docker_problem,
    inline_dispatch,
    job_table,
    local_backend,
    sample_image,
    wait_for_jobs,
)
from container_manager.models import ContainerJob, EnvironmentVariableTemplate, ExecutorHost

SAMPLE_HOSTS: dict[str, dict[str, Any]] = {
    "docker": {
        "name": "sample-docker",
        "executor_type": "docker",
        "host_type": "unix",
        "connection_string": DOCKER_SOCKET,
        "auto_pull_images": False,
    },
    "mock": {
        "name": "sample-mock",
        "executor_type": "mock",
        "connection_string": "mock://localhost",
        "executor_config": {"duration": 1.0},
    },
}

SAMPLE_TEMPLATE = "sample-env"
SAMPLE_ENV_TEXT = "# created by create_sample_data\nSAMPLE_GREETING=hello\nSAMPLE_MODE=sample\n"

#: (name suffix, shell command) used in turn; ``{n}`` is the job's number.
SAMPLE_COMMANDS = [
    ("echo", "sh -c 'echo \"$SAMPLE_GREETING from sample job {n}\"'"),
    ("json", 'echo \'{{"sample": {n}, "ok": true}}\''),
    ("exit-2", "sh -c 'echo sample job {n} fails on purpose >&2; exit 2'"),
    ("sleep", "sh -c 'sleep 2; echo sample job {n} slept 2s'"),
]


class Command(BaseCommand):
    """Create (or reuse) the sample host and template, then submit ``--jobs`` new jobs."""

    help = (
        "Create a sample executor host (sample-mock or sample-docker), the sample-env "
        "environment template and --jobs sample jobs. Run them with process_container_jobs, "
        "or here with --run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """``--jobs``, ``--executor-type``, ``--run`` and ``--jobs-timeout``."""
        parser.add_argument("--jobs", type=int, default=5, help="Jobs to create (default 5).")
        parser.add_argument(
            "--executor-type",
            choices=sorted(SAMPLE_HOSTS),
            default="mock",
            help="Executor of the sample host (default mock).",
        )
        parser.add_argument(
            "--run",
            action="store_true",
            help="Run the jobs on this process's local dispatch threads and wait for them.",
        )
        parser.add_argument(
            "--jobs-timeout",
            type=float,
            default=120.0,
            help="With --run, seconds to wait for the jobs to finish (default 120).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Create the host, template and jobs; run them with ``--run``."""
        count, executor_type = options["jobs"], options["executor_type"]
        if count < 1:
            raise CommandError("--jobs must be at least 1")
        host = _sample_host(executor_type)
        template, _ = EnvironmentVariableTemplate.objects.get_or_create(
            name=SAMPLE_TEMPLATE,
            defaults={
                "description": "Sample variables",
                "environment_variables_text": SAMPLE_ENV_TEXT,
            },
        )
        if executor_type == "docker":
            self._warn_without_docker()
        if options["run"]:
            self._create_and_run(host, template, count, options["jobs_timeout"])
        else:
            self._create_only(host, template, count)

    def _create_only(
        self, host: ExecutorHost, template: EnvironmentVariableTemplate, count: int
    ) -> None:
        if not isinstance(dispatch.get_backend(), LocalBackend):
            jobs = _create_jobs(host, template, count)
            self.stdout.write(f"created {len(jobs)} jobs on {host.name}; sent to launch")
            return
        # Local threads started here would die with this process mid-launch; the
        # rows stay pending instead and the processor's first sweep launches them.
        with inline_dispatch():
            jobs = _create_jobs(host, template, count)
        self.stdout.write(
            f"created {len(jobs)} pending jobs on {host.name}; run "
            "`manage.py process_container_jobs` to run them"
        )

    def _create_and_run(
        self, host: ExecutorHost, template: EnvironmentVariableTemplate, count: int, timeout: float
    ) -> None:
        backend = local_backend("--run runs the jobs on this process's local threads")
        backend.start()
        try:
            jobs = _create_jobs(host, template, count)
            self.stdout.write(f"created {len(jobs)} jobs on {host.name}; running them")
            finished = wait_for_jobs([job.pk for job in jobs], timeout, self.stdout)
        finally:
            dispatch.reset_backend()
        fresh = ContainerJob.objects.in_bulk([job.pk for job in jobs])
        self.stdout.write(job_table(fresh[job.pk] for job in jobs))
        if not finished:
            raise CommandError(f"not every job finished within {timeout:g}s")

    def _warn_without_docker(self) -> None:
        problem = docker_problem(sample_image())
        if problem:
            self.stderr.write(f"warning: the jobs will fail until Docker can run them: {problem}")


def _sample_host(executor_type: str) -> ExecutorHost:
    fields = dict(SAMPLE_HOSTS[executor_type])
    host, _ = ExecutorHost.objects.get_or_create(name=fields.pop("name"), defaults=fields)
    if not host.is_active:
        raise CommandError(f"host {host.name} is inactive; activate it to add sample jobs")
    return host


def _create_jobs(
    host: ExecutorHost, template: EnvironmentVariableTemplate, count: int
) -> list[ContainerJob]:
    jobs = []
    for n in range(1, count + 1):
        suffix, command = SAMPLE_COMMANDS[(n - 1) % len(SAMPLE_COMMANDS)]
        try:
            jobs.append(
                ContainerJob.objects.create_job(
                    image=sample_image(),
                    command=command.format(n=n),
                    name=f"sample-{n}-{suffix}",
                    description="Created by create_sample_data.",
                    environment_template=template,
                    environment_vars={"SAMPLE_JOB": str(n)},
                    docker_host=host,
                    memory_limit=64,
                    cpu_limit=0.5,
                    timeout_seconds=60,
                )
            )
        except ValidationError as exc:
            raise CommandError(f"sample job {n} was refused: {exc.messages}") from exc
    return jobs
