"""`make demo`'s demo: submit six jobs the way a deployment does and show how each one ends.

Runs on the local Docker engine when it and the image answer, else on the mock executor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from container_manager import dispatch
from container_manager.management._support import (
    DOCKER_SOCKET,
    docker_problem,
    job_table,
    local_backend,
    sample_image,
    wait_for_jobs,
)
from container_manager.models import ContainerJob, EnvironmentVariableTemplate, ExecutorHost
from container_manager.rules import status as st

DEMO_TEMPLATE = "demo-env"
DEMO_ENV_TEXT = "# created by the demo\nGREETING=Hello from the demo-env template\n"


@dataclass(frozen=True)
class DemoJob:
    """One demo job: what it runs and how it ends on Docker."""

    name: str
    command: str
    expected: str
    options: dict[str, Any] = field(default_factory=dict)


DEMO_JOBS = [
    DemoJob("demo-hello-world", "echo 'Hello, world!'", st.COMPLETED),
    DemoJob("demo-stdout-stderr", "sh -c 'echo to stdout; echo to stderr >&2'", st.COMPLETED),
    DemoJob("demo-json-result", 'echo \'{"answer": 42, "ok": true}\'', st.COMPLETED),
    DemoJob("demo-non-zero-exit", "sh -c 'echo about to fail; exit 3'", st.FAILED),
    DemoJob("demo-timeout", "sleep 30", st.TIMEOUT, {"timeout_seconds": 2}),
    DemoJob(
        "demo-template-env",
        "sh -c 'echo \"$GREETING, TARGET=$TARGET\"'",
        st.COMPLETED,
        {"environment_template": DEMO_TEMPLATE, "environment_vars": {"TARGET": "world"}},
    ),
]


class Command(BaseCommand):
    """Run the demo jobs on this process's local dispatch threads and print a table of results.

    Fails (exit code 1) when a job ends in another status than expected or
    the jobs do not finish within ``--jobs-timeout`` seconds. The mock
    executor runs no command, so there every job completes (its 1.5 s run
    ends inside the timeout job's 2 s limit).
    """

    help = (
        "Submit six sample jobs (Docker if the engine and CM_TEST_IMAGE are there, else the "
        "mock executor), show their progress and print how each one ended."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """``--jobs-timeout``."""
        parser.add_argument(
            "--jobs-timeout",
            type=float,
            default=120.0,
            help="Seconds to wait for every job to finish (default 120).",
        )

    def handle(self, *args: Any, jobs_timeout: float, **options: Any) -> None:
        """Pick a host, submit the jobs, wait, print the table, check the outcomes."""
        backend = local_backend("the demo runs its jobs on this process's local threads")
        host = self._pick_host()
        EnvironmentVariableTemplate.objects.get_or_create(
            name=DEMO_TEMPLATE,
            defaults={
                "description": "Used by the demo",
                "environment_variables_text": DEMO_ENV_TEXT,
            },
        )
        backend.start()
        try:
            jobs = [_submit(spec, host) for spec in DEMO_JOBS]
            self.stdout.write(
                f"submitted {len(jobs)} jobs to {host.name}; waiting up to {jobs_timeout:g}s"
            )
            finished = wait_for_jobs([job.pk for job in jobs], jobs_timeout, self.stdout)
        finally:
            dispatch.reset_backend()
        fresh = ContainerJob.objects.in_bulk([job.pk for job in jobs])
        jobs = [fresh[job.pk] for job in jobs]
        self.stdout.write(job_table(jobs))
        self._report(jobs, host, finished, jobs_timeout)

    def _pick_host(self) -> ExecutorHost:
        image = sample_image()
        problem = docker_problem(image)
        if problem is None:
            name, defaults = (
                "demo-docker",
                {
                    "executor_type": "docker",
                    "host_type": "unix",
                    "connection_string": DOCKER_SOCKET,
                    "auto_pull_images": False,
                    "max_concurrent_jobs": 4,
                },
            )
        else:
            self.stdout.write(
                self.style.WARNING(
                    f"notice: Docker cannot run image {image!r} here ({problem}); the demo uses "
                    "the mock executor, which simulates jobs and starts no container"
                )
            )
            name, defaults = (
                "demo-mock",
                {
                    "executor_type": "mock",
                    "connection_string": "mock://localhost",
                    "executor_config": {"duration": 1.5},
                },
            )
        host, _ = ExecutorHost.objects.get_or_create(name=name, defaults=defaults)
        if not host.is_active:
            raise CommandError(f"host {host.name} is inactive; activate it to run the demo")
        return host

    def _report(
        self, jobs: list[ContainerJob], host: ExecutorHost, finished: bool, timeout: float
    ) -> None:
        parsed = next((j.parsed_output for j in jobs if j.name == "demo-json-result"), None)
        if parsed is not None:
            self.stdout.write(f"demo-json-result parsed as JSON: {parsed!r}")
        if not finished:
            raise CommandError(f"not every job finished within {timeout:g}s")
        on_docker = host.executor_type == "docker"
        wrong = []
        for spec, job in zip(DEMO_JOBS, jobs, strict=True):
            # The mock runs no command: each job "runs" for the host's duration and exits 0.
            expected = spec.expected if on_docker else st.COMPLETED
            if job.status != expected:
                wrong.append(f"{job.name} is {job.status}, expected {expected}")
        if wrong:
            raise CommandError("; ".join(wrong))
        self.stdout.write(self.style.SUCCESS("every job reached its expected status"))


def _submit(spec: DemoJob, host: ExecutorHost) -> ContainerJob:
    return ContainerJob.objects.create_job(
        image=sample_image(),
        command=spec.command,
        name=spec.name,
        description="Submitted by manage.py demo.",
        docker_host=host,
        memory_limit=64,
        cpu_limit=0.5,
        **spec.options,
    )
