"""The ``ContainerJob`` row: a job's request, its status and its results, and its actions.

Rows are the truth. Status changes only through ``container_manager.engine.transitions``.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from container_manager import dispatch
from container_manager.conf import setting
from container_manager.executors import capabilities
from container_manager.executors.exceptions import ExecutorConfigurationError
from container_manager.executors.factory import (
    ExecutorFactory,
    executor_choices,
)
from container_manager.models.environments import EnvironmentVariableTemplate
from container_manager.models.hosts import ExecutorHost, editable_field_names
from container_manager.models.manager import JobManager
from container_manager.rules import contract
from container_manager.rules import labels as labels_rules
from container_manager.rules import status as st
from container_manager.rules.envtext import parse_env_text, validate_env_text
from container_manager.rules.logtext import LIVE, NONE, STORED, JobLogs, slice_log, strip_timestamps


def default_max_attempts() -> int:
    """``CONTAINER_MANAGER["DEFAULT_MAX_ATTEMPTS"]``, read when a job is created."""
    return setting("DEFAULT_MAX_ATTEMPTS")


class ContainerJob(models.Model):
    """
    Represents a containerized job execution request with full lifecycle tracking.

    This is the core model: an image, a command, limits and environment, the
    host to run on, and everything that happened: status, exit code, logs,
    timings and resource use. Each launch attempt also writes a
    ``ContainerExecution`` row, so a retried job keeps its history.

    Key Features:
        - Multi-executor support (Docker, Cloud Run, Fargate, Scaleway, Mock)
        - Resource limits (``memory_limit`` in MB, ``cpu_limit`` in cores),
          bounded by ``CONTAINER_MANAGER`` settings
        - Environment from a template plus per-job overrides
        - Logs harvested and stored (stdout, stderr, timestamp-free output),
          each capped at ``LOG_MAX_BYTES`` with a visible marker
        - Status changed only by compare-and-set transitions
          (``container_manager.engine.transitions``); a ``save()`` that changes
          ``status`` raises ``InvalidTransition``. Each committed move sends
          ``post_save`` with ``update_fields`` naming ``status`` and the
          fields written with it, so signal receivers see every change

    How a job runs:
        Saving a new job sends a ``launch`` step when the transaction commits
        (``container_manager.dispatch``). Launch reserves a slot on the host
        and starts the container; ``check`` steps poll it, stop it at
        ``timeout_seconds`` and stop it on a cancel request; ``harvest``
        stores the results. A scheduled sweep re-sends any step that is due,
        so lost messages only delay a job.

    Typical Usage:
        >>> job = ContainerJob.objects.create(
        ...     image="python:3.9",
        ...     command='python -c "print(42)"',
        ...     docker_host=docker_host,
        ...     memory_limit=128,
        ...     cpu_limit=0.5,
        ... )
        >>> job.launch()
        True
        >>> while not job.is_terminal_status:
        ...     time.sleep(0.1)
        ...     job.refresh_from_db()
        >>> job.status, job.exit_code
        ('completed', 0)
        >>> job.get_logs()
        'mock executor: simulated run, no container was started\\n'

    Status Lifecycle:
        pending -> launching -> running -> completed | failed | timeout;
        cancelled from any of the first three. A retryable launch error sends
        the job back to pending with a later ``run_after`` until
        ``max_attempts`` is used up.

    Related Models:
        - ExecutorHost: where the job executes (``docker_host``, reverse ``host.jobs``)
        - EnvironmentVariableTemplate: base environment (reverse ``template.jobs``)
        - ContainerExecution: one row per launch attempt (``containerexecution_set``)
        - Workflows (``container_manager.engine.workflows``): ``depends_on`` / ``dependents``
          through ``JobDependency``; an array parent's ``array_children`` and its
          ``array_counts``
    """

    STATUS_CHOICES = st.STATUS_CHOICES

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    docker_host = models.ForeignKey(
        ExecutorHost,
        on_delete=models.PROTECT,
        related_name="jobs",
        help_text="The executor host that runs the job.",
    )
    name = models.CharField(
        max_length=200, blank=True, default="", help_text="Human-readable name."
    )
    status = models.CharField(
        max_length=20,
        choices=STATUS_CHOICES,
        default=st.PENDING,
        help_text=(
            "Current status. pending -> launching -> running -> completed/failed/timeout; "
            "cancelled from any live status; skipped from pending (a workflow node whose "
            "edges cannot fire). Terminal statuses never change."
        ),
    )
    description = models.TextField(blank=True, default="", help_text="What the job does.")
    docker_image = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text=(
            "Image in standard form: 'python:3.11', 'nginx:latest', "
            "'registry.example.com/app:v1.2.3'. Required to submit a job, but on Cloud Run, "
            "Fargate and Scaleway hosts, where empty means the image of the host's platform job."
        ),
    )
    command = models.TextField(
        blank=True,
        default="",
        help_text=(
            'Command to run. Shell form (sh -c "echo hello") is split like a shell would; '
            'exec form is a JSON array (["echo", "hello"]). Empty: the image\'s default.'
        ),
    )
    working_directory = models.CharField(
        max_length=500, blank=True, default="", help_text="Working directory inside the container."
    )
    memory_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=(
            "Memory limit in megabytes (MB). The container is killed if it exceeds it. "
            "Blank for no limit; bounded by MIN/MAX_MEMORY_LIMIT_MB."
        ),
    )
    cpu_limit = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.1), MaxValueValidator(32.0)],
        help_text="CPU limit in cores (1.0 = one core, 0.5 = half). Usage is throttled to it.",
    )
    timeout_seconds = models.PositiveIntegerField(
        default=3600,
        help_text="Seconds the container may run; then it is stopped and the job is 'timeout'.",
    )
    environment_template = models.ForeignKey(
        EnvironmentVariableTemplate,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        help_text="Template giving the base environment variables.",
    )
    network_configuration = models.JSONField(
        default=list,
        blank=True,
        help_text='Networks to join: [{"network_name": "app-net", "aliases": ["worker"]}].',
    )
    override_environment = models.TextField(
        blank=True,
        default="",
        validators=[validate_env_text],
        help_text="KEY=value lines that override the template's variables.",
    )
    execution_id = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="Platform id of the current execution: container id, execution name, task ARN.",
    )
    exit_code = models.IntegerField(null=True, blank=True, help_text="The process's exit code.")
    started_at = models.DateTimeField(
        null=True, blank=True, help_text="When the container started."
    )
    completed_at = models.DateTimeField(null=True, blank=True, help_text="When the job finished.")
    executor_metadata = models.JSONField(
        default=dict, blank=True, help_text="Platform details kept by the executor."
    )
    max_memory_usage = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Peak memory seen while running, in bytes."
    )
    cpu_usage_percent = models.FloatField(
        null=True, blank=True, help_text="Average CPU use while running (100 = one core)."
    )
    stdout_log = models.TextField(
        blank=True, default="", help_text="Standard output, with timestamps."
    )
    stderr_log = models.TextField(
        blank=True, default="", help_text="Standard error, with timestamps."
    )
    docker_log = models.TextField(
        blank=True, default="", help_text="What the platform said about the execution."
    )
    clean_output = models.TextField(
        blank=True, default="", help_text="Standard output without timestamps."
    )
    returns_result = models.BooleanField(
        default=False,
        help_text="The last line of its stdout is its result, JSON, given to the jobs that "
        "depend on it as CM_INPUT_<NODE>; without one it ends failed (docs/workflows.md).",
    )
    result = models.TextField(
        null=True,
        blank=True,
        editable=False,
        help_text="Its result as JSON text, stored when a job with returns_result completes.",
    )
    labels = models.JSONField(
        default=dict,
        blank=True,
        help_text="Key to value (rules.labels); the job list filters on their JobLabel rows.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        help_text="Who submitted the job.",
    )
    priority = models.IntegerField(
        default=0, help_text="Higher runs first among jobs waiting for the same host."
    )
    max_attempts = models.PositiveIntegerField(
        default=default_max_attempts,
        validators=[MinValueValidator(1)],
        help_text="Launch attempts allowed before a retryable error fails the job.",
    )
    attempt_count = models.PositiveIntegerField(default=0, help_text="Launch attempts so far.")
    run_after = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Earliest time of the next launch; moved later by retry backoff.",
    )
    next_check_at = models.DateTimeField(
        null=True, blank=True, help_text="When a running job is next checked."
    )
    lease_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="A launch not finished by then is taken over by the sweep."
    )
    last_error = models.TextField(blank=True, default="", help_text="The last error met.")
    cancel_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="When a cancel was requested."
    )
    stop_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="When the platform was asked to stop the execution."
    )
    stop_reason = models.CharField(
        max_length=20,
        blank=True,
        default="",
        choices=[(st.TIMEOUT, "Timeout"), (st.CANCELLED, "Cancelled")],
        help_text="The status the job ends in once its stopped execution is gone.",
    )
    waiting_for_host_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Since when the job waits for its unreachable host; bounded by a setting.",
    )
    estimated_cost = models.DecimalField(
        max_digits=14,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Estimated cost of the run, in cost_currency; set at harvest.",
    )
    cost_currency = models.CharField(
        max_length=3, blank=True, default="", help_text="Currency of estimated_cost, e.g. USD."
    )
    # -- workflows (container_manager.engine.workflows) --
    depends_on = models.ManyToManyField(
        "self",
        through="JobDependency",
        through_fields=("job", "depends_on"),
        symmetrical=False,
        related_name="dependents",
        blank=True,
        help_text="Jobs that must complete before this one launches.",
    )
    array_parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        editable=False,
        on_delete=models.CASCADE,
        related_name="array_children",
        help_text="The array job this job is a child of.",
    )
    array_index = models.PositiveIntegerField(
        null=True, blank=True, editable=False, help_text="This child's index in its array, from 0."
    )
    array_size = models.PositiveIntegerField(
        null=True,
        blank=True,
        editable=False,
        help_text="Children in the array (set on the parent and on each child).",
    )
    max_parallel = models.PositiveIntegerField(
        null=True,
        blank=True,
        editable=False,
        help_text="An array's most children launching or running at once (copied to each child).",
    )
    tolerated_failures = models.CharField(
        max_length=8,
        blank=True,
        default="",
        editable=False,
        help_text="An array's children that may fail or time out before it fails: a count or "
        "a percent ('10%'); blank: any failure fails it once all ended.",
    )
    has_dependents = models.BooleanField(
        default=False,
        editable=False,
        help_text="Some job waits for this one: its final move sends their launches.",
    )
    workflow = models.ForeignKey(
        "Workflow",
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        db_index=False,  # the unique (workflow, workflow_node) index serves its lookups
        related_name="jobs",
        help_text="The workflow this job is a node of (Workflow.objects.submit).",
    )
    workflow_node = models.CharField(
        max_length=63,
        blank=True,
        default="",
        editable=False,
        help_text="The node's name in its workflow, unique there.",
    )

    objects = JobManager()

    #: Fields written only by the steps (the workflow ones by its submit); ``save()`` of an
    #: existing job leaves them alone.
    SYSTEM_FIELDS = frozenset(
        {
            "status", "execution_id", "exit_code", "started_at", "completed_at",
            "executor_metadata", "max_memory_usage", "cpu_usage_percent", "stdout_log",
            "stderr_log", "docker_log", "clean_output", "attempt_count", "run_after",
            "next_check_at", "lease_expires_at", "last_error", "cancel_requested_at",
            "stop_requested_at", "stop_reason", "waiting_for_host_since",
            "estimated_cost", "cost_currency", "has_dependents", "workflow", "workflow_node",
            "result",
        }
    )  # fmt: skip

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "container job"
        permissions = [
            ("view_all_jobs", "Can see every user's jobs through the API"),
            ("view_metrics", "Can read cm/metrics/ (every host's figures) with an API token"),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="cjob_status_created_idx"),
            models.Index(fields=["created_by", "status"], name="cjob_created_by_status_idx"),
            models.Index(fields=["docker_host", "status"], name="cjob_host_status_idx"),
            models.Index(fields=["status"], name="cjob_status_idx"),
            models.Index(fields=["status", "run_after"], name="cjob_due_launch_idx"),
            models.Index(fields=["status", "next_check_at"], name="cjob_due_check_idx"),
            models.Index(fields=["status", "lease_expires_at"], name="cjob_due_lease_idx"),
            models.Index(
                fields=["cancel_requested_at"],
                name="cjob_cancel_requested_idx",
                condition=Q(cancel_requested_at__isnull=False),
            ),
            models.Index(fields=["array_parent", "status"], name="cjob_array_parent_status_idx"),
            # Array parents by status: the sweep's live parents whose children all ended.
            models.Index(
                fields=["status"],
                name="cjob_array_status_idx",
                condition=Q(array_size__isnull=False, array_parent__isnull=True),
            ),
            # The admin's list order (``-created_at``, then ``-pk``), whole and by host.
            models.Index(fields=["-created_at", "-id"], name="cjob_list_idx"),
            models.Index(fields=["docker_host", "-created_at", "-id"], name="cjob_host_list_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["array_parent", "array_index"], name="cjob_array_index_unique"
            ),
            models.UniqueConstraint(
                fields=["workflow", "workflow_node"],
                name="cjob_workflow_node_unique",
                condition=Q(workflow__isnull=False),
            ),
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded_status = self.__dict__.get("status")

    def __str__(self) -> str:
        return f"{self.name or self.docker_image} ({self.status})"

    # -- saving -------------------------------------------------------------

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save the job's request fields; status and results belong to the steps.

        A new job must be ``pending``. On an existing job a changed ``status``
        raises ``InvalidTransition``, and the system fields are never written,
        so an edit made from a stale copy cannot undo a step's work.
        """
        current = self.__dict__.get("status")
        adding = self._state.adding
        if adding:
            if current != st.PENDING:
                raise st.InvalidTransition(
                    f"status: a new job starts as 'pending', not {current!r}"
                )
        elif current != self._loaded_status:
            raise st.InvalidTransition(
                f"status: {self._loaded_status!r} -> {current!r} is not done by save(); "
                "use job.cancel(), job.launch() or the steps in container_manager.engine.steps"
            )
        elif kwargs.get("update_fields") is None:
            kwargs["update_fields"] = editable_field_names(self, self.SYSTEM_FIELDS)
        super().save(*args, **kwargs)
        self._loaded_status = current
        if adding:
            using = kwargs.get("using") or self._state.db
            dispatch.send_on_commit("launch", self.pk, using=using)

    def refresh_from_db(self, *args: Any, **kwargs: Any) -> None:
        """Reload from the database (the truth), status included."""
        super().refresh_from_db(*args, **kwargs)
        self._loaded_status = self.__dict__.get("status")

    def clean(self) -> None:
        """Check what the field validators cannot: limits from settings, networks, host, and what
        the host's platform cannot do (``capabilities.refusals``)."""
        super().clean()
        errors: dict[str, str] = {}
        if not (self.docker_image or "").strip():
            platform_image = self._platform_image()
            if platform_image is None:
                errors["docker_image"] = "docker_image: an image is required."
            else:
                self.docker_image = platform_image
        # full_clean() calls clean() even when a field failed to convert: numbers only.
        errors.update(contract.bound_errors({n: getattr(self, n) for n in contract.ROW_BOUNDED}))
        network_error = contract.network_error(self.network_configuration)
        if network_error:
            errors["network_configuration"] = network_error
        labels_error = labels_rules.labels_error(self.labels)
        if labels_error:
            errors["labels"] = f"labels: {labels_error}"
        if self.docker_host_id is not None:
            host = self.docker_host
            if not host.is_active:
                errors["docker_host"] = f"docker_host: host {host.name!r} is inactive."
            elif host.executor_type not in dict(executor_choices()):
                errors["docker_host"] = (
                    f"docker_host: host {host.name!r} has unknown executor type "
                    f"{host.executor_type!r}."
                )
            else:
                errors.update(self._capability_errors(host))
        if errors:
            raise ValidationError(errors)

    def _platform_image(self) -> str | None:
        """What an empty ``docker_image`` means on this job's host: its platform job's image
        (``executor_config["image"]``, "" when not named) where runs cannot change the image;
        None elsewhere (an image is required)."""
        if self.docker_host_id is None:
            return None
        host = self.docker_host
        try:
            executor_class = ExecutorFactory.executor_class(host.executor_type)
        except ExecutorConfigurationError:
            return None
        if not executor_class.platform_job_key:
            return None
        image = (host.executor_config or {}).get("image")
        return image if isinstance(image, str) else ""

    def _capability_errors(self, host: ExecutorHost) -> dict[str, str]:
        try:
            executor_class = ExecutorFactory.executor_class(host.executor_type)
        except ExecutorConfigurationError:
            return {}  # a type that cannot be imported fails at launch, naming the path
        return {
            field: f"{field}: host {host.name!r} ({host.executor_type}) {why}"
            for field, why in capabilities.refusals(self, executor_class).items()
        }

    # -- the request --------------------------------------------------------

    @property
    def image(self) -> str:
        """The container image; another name for ``docker_image``."""
        return self.docker_image

    @image.setter
    def image(self, value: str) -> None:
        self.docker_image = value

    def get_all_environment_variables(self) -> dict[str, str]:
        """
        The job's environment: the template's variables overlaid with the overrides.

        >>> job = ContainerJob(override_environment="B=2\\nC=3")
        >>> template = EnvironmentVariableTemplate(environment_variables_text="A=1\\nB=1")
        >>> job.environment_template = template
        >>> job.get_all_environment_variables()
        {'A': '1', 'B': '2', 'C': '3'}
        """
        result = {}
        if self.environment_template_id is not None or self.environment_template is not None:
            result.update(self.environment_template.get_environment_variables_dict())
        result.update(self.get_override_environment_variables_dict())
        return result

    def get_override_environment_variables_dict(self) -> dict[str, str]:
        """Parse ``override_environment`` into ``{KEY: value}``."""
        return parse_env_text(self.override_environment or "")

    def get_network_names(self) -> list[str]:
        """
        Names of the networks in ``network_configuration``.

        >>> ContainerJob(network_configuration=[
        ...     {"network_name": "app-network", "aliases": ["worker"]},
        ...     {"network_name": "data-network", "aliases": ["processor"]},
        ... ]).get_network_names()
        ['app-network', 'data-network']
        """
        return [
            n["network_name"] for n in self.network_configuration or [] if n.get("network_name")
        ]

    def get_execution_identifier(self) -> str:
        """The platform's id of the current execution, or ``""`` before launch."""
        return self.execution_id

    def set_execution_identifier(self, execution_id: str) -> None:
        """Set the execution id on this instance (the launch step stores it)."""
        self.execution_id = execution_id

    def can_use_executor(self, executor_type: str) -> bool:
        """
        True when an executor of that type can honour this job's request.

        A job with networks needs an executor that supports networking; one
        with limits needs one that supports resource limits; one with secret
        references one that can use their kinds.

        >>> job = ContainerJob(network_configuration=[{"network_name": "n"}])
        >>> job.can_use_executor("docker"), job.can_use_executor("cloudrun")
        (True, False)
        """
        try:
            executor_class = ExecutorFactory.executor_class(executor_type)
        except ExecutorConfigurationError:  # an unknown or broken type cannot be used
            return False
        return not capabilities.refusals(self, executor_class)

    @property
    def is_array_parent(self) -> bool:
        """
        True for the parent of an array: it runs no container, its status follows its children.

        >>> ContainerJob(array_size=3).is_array_parent
        True
        >>> ContainerJob(array_size=3, array_index=0, array_parent_id=uuid.uuid4()).is_array_parent
        False
        """
        return self.array_size is not None and self.array_parent_id is None

    # -- what happened -------------------------------------------------------

    @property
    def is_terminal_status(self) -> bool:
        """
        True when the job reached a final status: completed, failed, timeout, cancelled, skipped.

        Terminal statuses never change. ``pending``, ``launching`` and
        ``running`` are not terminal.

        >>> ContainerJob(status="timeout").is_terminal_status
        True
        >>> ContainerJob(status="running").is_terminal_status
        False
        """
        return self.status in st.TERMINAL

    @property
    def duration(self) -> timedelta | None:
        """
        Time from start to finish, or None until the job has finished.

        >>> from datetime import datetime, timezone as tz
        >>> ContainerJob(
        ...     started_at=datetime(2024, 1, 1, 12, 0, tzinfo=tz.utc),
        ...     completed_at=datetime(2024, 1, 1, 12, 1, 30, tzinfo=tz.utc),
        ... ).duration
        datetime.timedelta(seconds=90)
        """
        if self.started_at and self.completed_at:
            return self.completed_at - self.started_at
        return None

    @property
    def runtime_duration(self) -> timedelta | None:
        """
        How long the job has run: start to finish, or start to now while running.

        None before the container starts.

        >>> ContainerJob().runtime_duration is None
        True
        >>> running = ContainerJob(started_at=timezone.now() - timedelta(seconds=5))
        >>> running.runtime_duration >= timedelta(seconds=5)
        True
        """
        if not self.started_at:
            return None
        return (self.completed_at or timezone.now()) - self.started_at

    @property
    def clean_output_processed(self) -> str:
        """Standard output without timestamps: ``clean_output``, or derived from ``stdout_log``."""
        return self.clean_output or strip_timestamps(self.stdout_log)

    @property
    def parsed_output(self) -> Any:
        """
        The output parsed as JSON: the whole text, else its last line; None if neither parses.

        >>> ContainerJob(clean_output='starting\\n{"rows": 3}\\n').parsed_output
        {'rows': 3}
        >>> ContainerJob(clean_output="plain text").parsed_output is None
        True
        """
        text = self.clean_output_processed.strip()
        if not text:
            return None
        for candidate in (text, text.splitlines()[-1]):
            try:
                return json.loads(candidate)
            except ValueError:
                continue
        return None

    # -- actions (each goes through the steps) -------------------------------

    def launch(self) -> bool:
        """
        Launch the job now, in this process, instead of waiting for its message.

        Runs the ``launch`` step: reserve a slot on the host, create a
        ``ContainerExecution``, start the container, record the execution id.
        Safe to call more than once and alongside the dispatcher: a job that
        is already launched is left as it is.

        Returns:
            bool: True when the job has launched (now or before); False when
            it could not (its host is full, a retry is scheduled, or the
            launch failed: see ``last_error``).
        """
        _run_step("launch", self.pk)
        self.refresh_from_db()
        return bool(self.execution_id) or self.status == st.LAUNCHING

    def harvest(self) -> bool:
        """
        Collect final results if the execution has finished.

        Runs the ``harvest`` step: when the execution has finished, its exit
        code, logs, timings and resource use are stored and the status
        becomes terminal. A running execution and a terminal job are left
        as they are.

        Returns:
            bool: True when the job is terminal afterwards.
        """
        if not self.is_terminal_status:
            _run_step("harvest", self.pk)
        self.refresh_from_db()
        return self.is_terminal_status

    def cancel(self) -> bool:
        """
        Ask for the job to be cancelled; the container is stopped by the ``cancel`` step.

        Returns:
            bool: True when the request was recorded (the job was live).
        """
        now = timezone.now()
        live = ContainerJob.objects.filter(pk=self.pk, status__in=st.LIVE)
        recorded = live.filter(cancel_requested_at__isnull=True).update(
            cancel_requested_at=now, updated_at=now
        )
        if recorded:
            dispatch.send_on_commit("cancel", self.pk)
        self.refresh_from_db()
        return bool(recorded) or self.status in st.LIVE

    def get_logs(self) -> str:
        """
        The job's logs: every attempt's stored output, oldest first.

        For a running job the current execution's output is read live from
        the platform. stdout comes before stderr within an attempt.
        """
        parts = [e.logs for e in self.containerexecution_set.order_by("attempt") if e.logs]
        if self.status == st.RUNNING and self.execution_id:
            stdout, stderr = ExecutorFactory().get_executor(self).get_logs(self.execution_id)
            parts.append(stdout + stderr)
        return "".join(parts)

    def read_logs(self, stdout_offset: int = 0, stderr_offset: int = 0) -> JobLogs:
        """
        The current attempt's stdout and stderr from byte offsets, for a reader following them.

        While the job runs they are read live from the platform (when its executor
        ``supports_live_logs``); once it ended, from the stored logs. Offsets count the
        bytes of each stream from its start (see ``logtext.slice_log``), so pass back the
        answer's ``stdout.offset`` and ``stderr.offset`` to get only what came after; each
        stream's text is at most ``LOG_MAX_BYTES``. Follow until ``complete``. Raises
        ``ExecutorError`` when the platform's logs cannot be read now.

        >>> logs = ContainerJob(status="completed", stdout_log="one\\ntwo\\n").read_logs(4)
        >>> logs.stdout.text, logs.stdout.offset, logs.complete
        ('two\\n', 8, True)
        """
        stdout, stderr, source = self._log_text()
        limit = int(setting("LOG_MAX_BYTES"))
        return JobLogs(
            self.status,
            source,
            slice_log(stdout, stdout_offset, limit),
            slice_log(stderr, stderr_offset, limit),
        )

    def _log_text(self) -> tuple[str, str, str]:
        """``(stdout, stderr, source)``: stored, live from the platform, or none (yet)."""
        if self.is_terminal_status:
            return self.stdout_log, self.stderr_log, STORED
        if self.status != st.RUNNING or not self.execution_id:
            return "", "", NONE
        executor = ExecutorFactory().get_executor(self)
        if not executor.get_capabilities().get("supports_live_logs"):
            return "", "", NONE
        stdout, stderr = executor.get_logs(self.execution_id)
        return stdout, stderr, LIVE


def _run_step(step: str, job_id: Any) -> None:
    """Run an engine step in this process, for ``launch()`` and ``harvest()``.

    The models sit below the engine: this import is the one call up the layers, listed as
    the only exception in ``tests/test_architecture.py``.
    """
    from container_manager.engine import steps

    steps.STEPS[step](job_id)
