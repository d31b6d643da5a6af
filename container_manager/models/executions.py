"""Execution attempts: one row per launch of a job, with its host, times, exit code and logs.

A retried job keeps its history here; the job row keeps the summary.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import models
from django.utils import timezone

from container_manager.models.hosts import ExecutorHost
from container_manager.models.jobs import ContainerJob
from container_manager.rules import status as st


class ContainerExecution(models.Model):
    """
    Tracks individual execution attempts for a ContainerJob.

    While ContainerJob represents the job request and overall status,
    ContainerExecution records each launch attempt: which host, which
    platform execution, when it started and finished, its exit code, logs and
    resource use. A job retried after a launch error keeps every attempt.

    Execution Lifecycle:
        1. Created by the launch step when an attempt begins (``launching``):
           ``started_at`` is when the launch was requested
        2. ``execution_id`` and ``accepted_at`` recorded when the platform accepts the launch
        3. Logs, exit code, usage, ``container_started_at``, ``platform_times`` and
           ``harvested_at`` recorded when the job is harvested
        4. ``status`` and ``finished_at`` recorded when the attempt ends

    Phase timings:
        ``phases()`` lists submitted, launch requested, accepted, container
        started, finished and harvested, as far as they are known; the admin
        draws them as a timeline and the API returns them.

    Relationship to ContainerJob:
        - One-to-many: ``job.containerexecution_set``, one row per ``attempt``
        - Cascade delete: executions are deleted with their job
        - Written in the same transaction as the job's status move

    Log Management:
        A finished job's logs are written once, on the job (its final move);
        ``log(name)`` reads an attempt's from its own columns, or from the job's
        for the job's last attempt. ``stdout_log`` and ``stderr_log`` are capped at
        ``LOG_MAX_BYTES`` each with a visible marker; ``logs`` joins them.

    Example Usage:
        >>> job = ContainerJob.objects.create_job(
        ...     image="alpine:latest", command="echo done", docker_host=docker_host,
        ... )
        >>> job.refresh_from_db()  # the steps ran (inline here): read what they stored
        >>> latest_execution = job.containerexecution_set.latest("started_at")
        >>> latest_execution.attempt, latest_execution.status
        (1, 'completed')
        >>> latest_execution.container_id == job.execution_id
        True
        >>> "simulated run" in latest_execution.logs
        True
        >>> for execution in job.containerexecution_set.all():
        ...     duration = execution.finished_at - execution.started_at
    """

    job = models.ForeignKey(ContainerJob, on_delete=models.CASCADE, help_text="The job.")
    attempt = models.PositiveIntegerField(help_text="Launch attempt number, from 1.")
    host = models.ForeignKey(
        ExecutorHost,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="executions",
        help_text="Where the attempt ran.",
    )
    execution_id = models.CharField(
        max_length=255, blank=True, default="", help_text="The platform's id of this execution."
    )
    status = models.CharField(
        max_length=20,
        choices=st.STATUS_CHOICES,
        default=st.LAUNCHING,
        help_text="How the attempt ended.",
    )
    started_at = models.DateTimeField(
        default=timezone.now, help_text="When the attempt began: the launch was requested."
    )
    accepted_at = models.DateTimeField(
        null=True, blank=True, help_text="When the platform accepted the launch (an execution id)."
    )
    container_started_at = models.DateTimeField(
        null=True, blank=True, help_text="When the container started, by the platform's clock."
    )
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When the attempt ended.")
    harvested_at = models.DateTimeField(
        null=True, blank=True, help_text="When the results were stored."
    )
    platform_times = models.JSONField(
        default=dict,
        blank=True,
        help_text="The platform's own timestamps of the execution (name -> ISO 8601), if any.",
    )
    exit_code = models.IntegerField(null=True, blank=True)
    stdout_log = models.TextField(blank=True, default="")
    stderr_log = models.TextField(blank=True, default="")
    docker_log = models.TextField(blank=True, default="")
    max_memory_usage = models.PositiveBigIntegerField(null=True, blank=True)
    cpu_usage_percent = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True, default="", help_text="Why the attempt failed, if it did.")

    class Meta:
        ordering = ["job", "attempt"]
        constraints = [
            models.UniqueConstraint(fields=["job", "attempt"], name="cexec_job_attempt_unique")
        ]
        # The dashboard's time-to-start medians read the attempts started in the last day.
        indexes = [
            models.Index(fields=["container_started_at"], name="cexec_container_started_idx")
        ]
        verbose_name = "container execution"

    def __str__(self) -> str:
        return f"{self.job_id} attempt {self.attempt} ({self.status})"

    @property
    def container_id(self) -> str:
        """The platform's execution id (a container id on Docker)."""
        return self.execution_id

    def log(self, name: str) -> str:
        """This attempt's ``stdout_log``, ``stderr_log`` or ``docker_log``.

        The final move writes a job's logs once, on the job: the job's last attempt
        reads them there unless its own column has some (a row written before).
        """
        own = getattr(self, name)
        if own or self.attempt != self.job.attempt_count:
            return own
        return getattr(self.job, name)

    @property
    def logs(self) -> str:
        """stdout followed by stderr of this attempt."""
        return self.log("stdout_log") + self.log("stderr_log")

    @property
    def duration(self) -> timedelta | None:
        """Time from the start of the attempt to its end, None while it goes on."""
        return self.finished_at - self.started_at if self.finished_at else None

    def phases(self) -> list[tuple[str, Any]]:
        """``(phase, time)`` of this attempt in order, the unknown ones left out.

        "submitted" is the job's ``created_at``.

        >>> from datetime import datetime, timezone as tz
        >>> at = datetime(2024, 1, 1, 12, 0, tzinfo=tz.utc)
        >>> execution = ContainerExecution(started_at=at, accepted_at=at + timedelta(seconds=2))
        >>> [name for name, _ in execution.phases()]
        ['launch requested', 'accepted']
        """
        submitted = self.job.created_at if self.job_id else None
        points = [
            ("submitted", submitted),
            ("launch requested", self.started_at),
            ("accepted", self.accepted_at),
            ("container started", self.container_started_at),
            ("finished", self.finished_at),
            ("harvested", self.harvested_at),
        ]
        return [(name, at) for name, at in points if at is not None]
