"""The four models: executor hosts, environment templates, jobs and their execution attempts.

Rows are the truth. Status changes only through ``container_manager.transitions``.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connections, models, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from container_manager import hooks, submission
from container_manager import status as st
from container_manager.conf import setting
from container_manager.envtext import format_env_text, parse_env_text, validate_env_text
from container_manager.executors import capabilities
from container_manager.executors.exceptions import ExecutorConfigurationError
from container_manager.executors.factory import (
    BUILTIN_EXECUTOR_TYPES,
    ExecutorFactory,
    executor_choices,
)
from container_manager.logtext import LIVE, NONE, STORED, JobLogs, slice_log, strip_timestamps
from container_manager.tokens import ApiToken

__all__ = [
    "ApiToken",
    "ContainerExecution",
    "ContainerJob",
    "EnvironmentVariableTemplate",
    "ExecutorHost",
    "HostSlot",
    "UsedSignature",
    "executor_choices",
]


def default_max_attempts() -> int:
    """``CONTAINER_MANAGER["DEFAULT_MAX_ATTEMPTS"]``, read when a job is created."""
    return setting("DEFAULT_MAX_ATTEMPTS")


class ExecutorHostQuerySet(models.QuerySet):
    """Queries over hosts."""

    def available(self) -> ExecutorHostQuerySet:
        """Active hosts with a free slot (read from the slot rows, not ``current_job_count``)."""
        return self.filter(Exists(HostSlot.objects.free(OuterRef("pk"))), is_active=True)

    def with_slots_used(self) -> ExecutorHostQuerySet:
        """Annotate ``slots_used``: the jobs holding a slot now, counted from the slot rows."""
        return self.annotate(slots_used=HostSlot.objects.held_count(OuterRef("pk")))

    def choose(self, executor_type: str | None = None) -> ExecutorHost | None:
        """Pick an active host for a new job, weighted by ``weight``.

        Hosts with a free slot are preferred; when every active host is full,
        one is still chosen and the job waits there for a slot. None when no
        host is active.
        """
        active = self.filter(is_active=True)
        if executor_type:
            active = active.filter(executor_type=executor_type)
        hosts = list(
            active.only("id", "weight").annotate(
                has_room=Exists(HostSlot.objects.free(OuterRef("pk")))
            )
        )
        free = [h for h in hosts if h.has_room]
        pool = free or hosts
        if not pool:
            return None
        chosen = random.choices(pool, weights=[h.weight for h in pool])[0]
        return self.get(pk=chosen.pk)


class ExecutorHost(models.Model):
    """
    Represents an execution environment for containerized jobs.

    ExecutorHost defines where and how jobs are executed: a Docker daemon, a
    Cloud Run project and region, an ECS cluster, a Scaleway project, or the
    Mock executor. ``executor_type`` chooses the executor class
    (``container_manager.executors.factory``) and ``executor_config`` holds its
    platform settings (documented per executor in ``docs/executors.md``).

    Supported Executor Types:
        - ``docker``: local or remote Docker daemon
        - ``cloudrun``: Google Cloud Run Jobs
        - ``fargate``: AWS ECS on Fargate
        - ``scaleway``: Scaleway Serverless Jobs
        - ``mock``: a simulated executor for tests and demos (says so in its output)
        - any type added in ``CONTAINER_MANAGER["EXECUTORS"]``

    Connection String Formats:
        Docker:
        - ``unix:///var/run/docker.sock`` (local Unix socket)
        - ``tcp://docker.example.com:2376`` (remote TCP; TLS with ``tls_enabled``)

        Cloud Run:
        - ``projects/PROJECT_ID/locations/REGION``

        Mock:
        - ``mock://localhost``

    Capacity:
        A host has ``max_concurrent_jobs`` slot rows (``HostSlot``, numbers 0 to
        ``max_concurrent_jobs - 1``, kept in step when the host is saved). A job
        takes a free one when it starts launching and gives it back (or passes it
        to the next waiting job) in the transaction that moves it out of
        ``launching``/``running``; a slot row is locked with ``SKIP LOCKED``, so
        launches on one host do not wait for each other, and a host never runs
        more than ``max_concurrent_jobs`` jobs even when many launches race.
        Admission, ``is_available()``, ``available()`` and the sweep read the
        slot rows.

        ``current_job_count`` reports the jobs holding a slot, for display and
        ordering. On SQLite it is exact (written in the moving transaction). On
        PostgreSQL each launch and hand-over refreshes it in its own statement
        from the committed slot rows, skipping the refresh when another one holds
        the host row, and each sweep refreshes every host: it is exact once no
        launch or finish is in flight, and is corrected by the next sweep at the
        latest. ``with_slots_used()`` gives the exact figure. Saving a host never
        writes ``current_job_count``.

    Health Monitoring:
        ``health_check()`` asks the executor to reach the platform and records
        the answer in ``last_health_check_at``, ``last_health_ok`` and
        ``last_health_error``. The steps record the same fields, and
        ``unreachable_since``, when they cannot reach the platform (jobs then
        wait, their attempts untouched), and clear them when it answers again.
        Inactive hosts are excluded from scheduling.

    Example Usage:
        >>> host = ExecutorHost.objects.create(
        ...     name="doc-mock-host",
        ...     executor_type="mock",
        ...     connection_string="mock://localhost",
        ...     max_concurrent_jobs=2,
        ... )
        >>> host.get_display_name()
        'doc-mock-host (Mock (tests and demos))'
        >>> host.is_available()
        True
        >>> host.health_check()
        True
        >>> job = ContainerJob.objects.create(
        ...     docker_image="alpine:latest", command="echo hi", docker_host=host,
        ... )
        >>> host.jobs.count()
        1
    """

    HOST_TYPE_CHOICES = [("tcp", "TCP"), ("unix", "Unix socket")]
    EXECUTOR_CHOICES = [(name, label) for name, (_path, label) in BUILTIN_EXECUTOR_TYPES.items()]

    name = models.CharField(
        max_length=100, unique=True, help_text="Unique, human-readable name of the host."
    )
    host_type = models.CharField(
        max_length=10,
        choices=HOST_TYPE_CHOICES,
        default="unix",
        help_text="How a Docker host is reached: 'unix' socket or 'tcp'. Not used by clouds.",
    )
    connection_string = models.CharField(
        max_length=500,
        help_text=(
            "Where the platform is: 'unix:///var/run/docker.sock', 'tcp://host:2376', "
            "'projects/P/locations/R' for Cloud Run, 'mock://localhost' for the mock."
        ),
    )
    tls_enabled = models.BooleanField(
        default=False, help_text="Use TLS for a TCP Docker connection."
    )
    tls_verify = models.BooleanField(
        default=False, help_text="Verify the Docker daemon's TLS certificate."
    )
    is_active = models.BooleanField(
        default=True, help_text="Inactive hosts get no new jobs; running jobs finish."
    )
    auto_pull_images = models.BooleanField(
        default=True, help_text="Pull an image the host does not have before launching."
    )
    executor_type = models.CharField(
        max_length=50,
        choices=executor_choices,
        default="docker",
        help_text="Which executor runs jobs on this host.",
    )
    executor_config = models.JSONField(
        default=dict,
        blank=True,
        help_text="Executor settings as a JSON object; keys are documented per executor.",
    )
    max_concurrent_jobs = models.PositiveIntegerField(
        default=10, help_text="At most this many jobs launch or run here at once."
    )
    weight = models.PositiveIntegerField(
        default=100,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Share of new jobs this host gets among active hosts (1-1000).",
    )
    current_job_count = models.PositiveIntegerField(
        default=0,
        help_text=(
            "Jobs launching or running here, from the slot rows; on PostgreSQL it may lag "
            "concurrent launches until the next sweep."
        ),
    )
    last_health_check_at = models.DateTimeField(
        null=True, blank=True, help_text="When health_check() last ran."
    )
    last_health_ok = models.BooleanField(
        null=True, blank=True, help_text="What the last health check found."
    )
    last_health_error = models.TextField(
        blank=True, default="", help_text="The error of the last failed health check."
    )
    unreachable_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Since when the steps could not reach the platform; empty while it answers.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ExecutorHostQuerySet.as_manager()

    #: Fields written by the system, never by ``save()`` of an existing host.
    SYSTEM_FIELDS = frozenset(
        {
            "current_job_count", "last_health_check_at", "last_health_ok", "last_health_error",
            "unreachable_since",
        }
    )  # fmt: skip

    class Meta:
        ordering = ["name"]
        verbose_name = "executor host"

    def __str__(self) -> str:
        return self.get_display_name()

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save the host's settings; ``current_job_count`` and health are never overwritten.

        The slot rows follow ``max_concurrent_jobs`` (``HostSlot.objects.sync``).
        """
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = _editable_field_names(self, self.SYSTEM_FIELDS)
        fields = kwargs.get("update_fields")
        with transaction.atomic(using=kwargs.get("using") or self._state.db):
            super().save(*args, **kwargs)
            if fields is None or "max_concurrent_jobs" in fields:
                HostSlot.objects.sync(self)

    def clean(self) -> None:
        """Check ``executor_config`` against the executor's declared keys, naming the key."""
        super().clean()
        if self.executor_config is not None and not isinstance(self.executor_config, dict):
            raise ValidationError({"executor_config": "must be a JSON object"})
        problem = self.config_problem()
        if problem:
            field = "executor_type" if problem.key == "executor_type" else "executor_config"
            raise ValidationError({field: str(problem)})

    def config_problem(self) -> ExecutorConfigurationError | None:
        """What is wrong with the executor type or its config, or None (no platform is called).

        >>> host = ExecutorHost(executor_type="mock", executor_config={"durration": 1})
        >>> str(host.config_problem()).split(" (known")[0]
        "executor_config['durration']: unknown key for the mock executor"
        """
        try:
            ExecutorFactory.executor_class(self.executor_type)(self)
        except ExecutorConfigurationError as exc:
            return exc
        return None

    def is_available(self) -> bool:
        """True when the host is active and has a free slot row below ``max_concurrent_jobs``.

        >>> host = ExecutorHost.objects.create(
        ...     name="doc-one-slot", executor_type="mock", max_concurrent_jobs=1
        ... )
        >>> host.is_available(), ExecutorHost(is_active=True, max_concurrent_jobs=1).is_available()
        (True, False)
        """
        if not self.is_active or self.pk is None:
            return False
        return HostSlot.objects.free(self.pk).exists()

    def slots_in_use(self) -> int:
        """How many of the host's slot rows a job holds (exact, unlike ``current_job_count``)."""
        return HostSlot.objects.filter(host_id=self.pk, job__isnull=False).count()

    def get_display_name(self) -> str:
        """``"name (Executor label)"``, as shown in lists and the admin."""
        label = dict(executor_choices()).get(self.executor_type, self.executor_type)
        return f"{self.name} ({label})"

    def health_check(self) -> bool:
        """Ask the executor whether the platform answers; record and return the result."""
        try:
            health = ExecutorFactory().get_executor(self).get_health_status()
        except Exception as exc:  # noqa: BLE001 - a broken config is an unhealthy host
            health = {"healthy": False, "error": str(exc)}
        answered = {"unreachable_since": None} if health["healthy"] else {}
        ExecutorHost.objects.filter(pk=self.pk).update(
            last_health_check_at=timezone.now(),
            last_health_ok=health["healthy"],
            last_health_error=health.get("error") or "",
            **answered,
        )
        self.last_health_ok = health["healthy"]
        self.last_health_error = health.get("error") or ""
        return bool(health["healthy"])


class HostSlotQuerySet(models.QuerySet):
    """Queries over slot rows; ``host`` is a host id or an ``OuterRef`` to one."""

    def free(self, host: Any) -> HostSlotQuerySet:
        """The free slots of ``host`` that count (numbers below ``max_concurrent_jobs``)."""
        return self.filter(
            host_id=host, job__isnull=True, number__lt=F("host__max_concurrent_jobs")
        )

    def held_count(self, host: Any) -> Any:
        """A subquery expression: how many slots of ``host`` a job holds."""
        held = self.filter(host_id=host, job__isnull=False).order_by()
        return Coalesce(Subquery(held.values("host_id").annotate(n=Count("pk")).values("n")[:1]), 0)

    def free_by_host(self, limit: int) -> dict[Any, int]:
        """``{host id: free slots, at most limit}`` of the active hosts that have any (one query).

        Each host's count stops at ``limit`` rows, so the query reads at most
        ``limit`` slot rows a host, however large its ``max_concurrent_jobs``.
        """
        connection = connections[self.db]
        quote = connection.ops.quote_name
        hosts, slots = quote(ExecutorHost._meta.db_table), quote(HostSlot._meta.db_table)
        sql = f"""
            SELECT id, free FROM (
                SELECT h.id, (
                    SELECT count(*) FROM (
                        SELECT 1 FROM {slots} s
                        WHERE s.host_id = h.id AND s.job_id IS NULL
                            AND s.number < h.max_concurrent_jobs
                        LIMIT %s
                    ) AS room
                ) AS free
                FROM {hosts} h WHERE h.is_active
            ) AS counted
            WHERE free > 0
        """
        with connection.cursor() as cursor:
            cursor.execute(sql, [limit])
            return dict(cursor.fetchall())

    def sync(self, host: ExecutorHost) -> None:
        """Give ``host`` slot rows ``0 .. max_concurrent_jobs - 1``; drop free ones above.

        A held row above the limit stays until its job leaves (``transitions.hand_over``
        then deletes it instead of passing it on). Safe to run twice.
        """
        wanted = [HostSlot(host_id=host.pk, number=n) for n in range(host.max_concurrent_jobs)]
        self.bulk_create(wanted, ignore_conflicts=True)
        self.filter(
            host_id=host.pk, job__isnull=True, number__gte=host.max_concurrent_jobs
        ).delete()

    def refresh_counts(self) -> int:
        """Write each host's ``current_job_count`` from its slot rows; the hosts changed.

        Run by the sweep, so a count a concurrent launch left stale is right again
        within one sweep; a host row another transaction holds is skipped (not
        waited for) on PostgreSQL.
        """
        held = self.held_count(OuterRef("pk"))
        connection = connections[ExecutorHost.objects.db]
        if connection.vendor != "postgresql":
            return ExecutorHost.objects.exclude(current_job_count=held).update(
                current_job_count=held
            )
        quote = connection.ops.quote_name
        hosts, slots = quote(ExecutorHost._meta.db_table), quote(HostSlot._meta.db_table)
        # One statement, so no transaction of its own; the ORM refuses a lock outside one.
        sql = f"""
            WITH counted AS (
                SELECT host_id, count(*) AS held FROM {slots}
                WHERE job_id IS NOT NULL GROUP BY host_id
            ),
            drifted AS (
                SELECT h.id, COALESCE(c.held, 0) AS held
                FROM {hosts} h LEFT JOIN counted c ON c.host_id = h.id
                WHERE h.current_job_count <> COALESCE(c.held, 0)
                FOR NO KEY UPDATE OF h SKIP LOCKED
            )
            UPDATE {hosts} SET current_job_count = drifted.held
            FROM drifted WHERE {hosts}.id = drifted.id
        """
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.rowcount


class HostSlot(models.Model):
    """One of a host's ``max_concurrent_jobs`` slots; ``job`` is the job holding it, if any.

    A job holds a slot while it is ``launching`` or ``running`` (array parents
    hold none). The rows are the exact capacity record: ``current_job_count``
    on the host is a report derived from them (see ``ExecutorHost``).
    """

    host = models.ForeignKey(ExecutorHost, on_delete=models.CASCADE, related_name="slots")
    number = models.PositiveIntegerField(help_text="0 .. max_concurrent_jobs - 1.")
    job = models.OneToOneField(
        "ContainerJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="slot",
        help_text="The job holding this slot; empty when the slot is free.",
    )

    objects = HostSlotQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["host", "number"], name="cm_hostslot_host_number")
        ]
        indexes = [
            # A launch's first free row, and a host's held rows, without reading the others.
            models.Index(
                fields=["host", "number"],
                condition=Q(job__isnull=True),
                name="cm_hostslot_free_idx",
            ),
            models.Index(
                fields=["host"], condition=Q(job__isnull=False), name="cm_hostslot_held_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"slot {self.number} of host {self.host_id}"


class EnvironmentVariableTemplate(models.Model):
    """
    Template for reusable environment variable configurations across jobs.

    Provides a way to define and reuse common environment variable sets,
    promoting consistency and reducing duplication in job configurations.

    Format (parsed by ``get_environment_variables_dict``):
        - One variable per line: ``KEY=VALUE``; the first ``=`` splits, so
          values may contain ``=``
        - Lines starting with ``#`` are comments; empty lines are ignored
        - A value wrapped in matching quotes loses them: ``KEY="two words"``
        - Keys are letters, digits and ``_``, not starting with a digit;
          anything else is a validation error naming the line

    Variable Resolution:
        A job's environment is the template's variables overlaid with the
        job's ``override_environment``, resolved when the job launches, so
        editing a template changes jobs that have not launched yet.

    Example Usage:
        >>> env_template = EnvironmentVariableTemplate.objects.create(
        ...     name="python-production",
        ...     description="Production Python application environment",
        ...     environment_variables_text='''
        ... # application
        ... PYTHONPATH=/app
        ... ENV=production
        ... DEBUG=False
        ... DATABASE_URL=postgresql://user:pass@db:5432/app?sslmode=require
        ... GREETING="Hello World"
        ... ''',
        ... )
        >>> env_dict = env_template.get_environment_variables_dict()
        >>> env_dict["ENV"], env_dict["DEBUG"], env_dict["GREETING"]
        ('production', 'False', 'Hello World')
        >>> env_dict["DATABASE_URL"]
        'postgresql://user:pass@db:5432/app?sslmode=require'
        >>> job = ContainerJob.objects.create_job(
        ...     image="alpine:latest", command="env", docker_host=docker_host,
        ...     environment_template="python-production",
        ...     environment_vars={"DEBUG": "True"},
        ... )
        >>> job.get_all_environment_variables()["DEBUG"]
        'True'

    Security Considerations:
        Template text is stored in plain text in the database. Keep secrets in
        a secret manager; the admin masks values whose names look secret.
    """

    name = models.CharField(max_length=100, unique=True, help_text="Unique template name.")
    description = models.TextField(blank=True, default="", help_text="What the template is for.")
    environment_variables_text = models.TextField(
        blank=True,
        default="",
        validators=[validate_env_text],
        help_text=(
            "One KEY=value per line. '#' starts a comment line, blank lines are ignored, "
            "values may contain '=' and may be quoted."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who created the template.",
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "environment variable template"

    def __str__(self) -> str:
        return self.name

    def get_environment_variables_dict(self) -> dict[str, str]:
        """Parse ``environment_variables_text`` into ``{KEY: value}``."""
        return parse_env_text(self.environment_variables_text)


class JobQuerySet(models.QuerySet):
    """
    Queries over jobs by status; every method returns a QuerySet that can be chained.

    Available as ``ContainerJob.objects.pending()``, ``.active()``, ``.live()``
    and ``.terminal()``, and on any filtered queryset of jobs.
    """

    def pending(self) -> JobQuerySet:
        """
        Jobs waiting for execution (status ``pending``).

        >>> ContainerJob.objects.pending().filter(docker_image="nothing:here").count()
        0
        """
        return self.filter(status=st.PENDING)

    def active(self) -> JobQuerySet:
        """
        Jobs launching or running: they hold a slot on their host.

        >>> isinstance(ContainerJob.objects.active().count(), int)
        True
        """
        return self.filter(status__in=st.HOLDS_SLOT)

    def live(self) -> JobQuerySet:
        """Jobs not yet terminal: pending, launching or running."""
        return self.filter(status__in=st.LIVE)

    def terminal(self) -> JobQuerySet:
        """Jobs that finished: completed, failed, timeout or cancelled."""
        return self.filter(status__in=st.TERMINAL)


class JobManager(models.Manager.from_queryset(JobQuerySet)):
    """
    Manager of ``ContainerJob``: the query shortcuts plus ``create_job``.

    ``pending()`` and ``active()`` return QuerySets; ``create_job()`` is the
    convenient, validated way to submit a job.
    """

    def create_job(
        self,
        image: str,
        command: str = "",
        name: str = "",
        environment_template: EnvironmentVariableTemplate | str | None = None,
        environment_vars: dict[str, str] | None = None,
        docker_host: ExecutorHost | None = None,
        **kwargs: Any,
    ) -> ContainerJob:
        """
        Validate and submit a job; it is sent to launch when the transaction commits.

        Args:
            image: container image, e.g. ``"python:3.11-slim"``
            command: shell-form command (or a JSON array for exec form)
            name: human-readable name
            environment_template: a template instance or its name
            environment_vars: variables overlaid on the template (and on an
                ``override_environment`` text given in ``kwargs``)
            docker_host: where to run; when omitted an active host is chosen,
                weighted by ``weight``, preferring hosts with a free slot
            **kwargs: any other ``ContainerJob`` field (``memory_limit``,
                ``cpu_limit``, ``timeout_seconds``, ``working_directory``,
                ``network_configuration``, ``priority``, ``max_attempts``,
                ``run_after``, ``created_by`` …)
            depends_on: jobs (or ids) that must complete first; see
                ``container_manager.workflows``
            array_size: make an array job: the returned parent runs no
                container and has ``array_size`` children (``array_children``)

        Raises:
            ValidationError: naming the field at fault; nothing is stored. The
                types and bounds of the fields are ``container_manager.submission``'s,
                the same the JSON API and its OpenAPI document use.

        >>> job = ContainerJob.objects.create_job(
        ...     image="python:3.11-slim",
        ...     command="python -c 'print(1)'",
        ...     name="Example Job",
        ...     memory_limit=256,
        ...     cpu_limit=1.0,
        ...     timeout_seconds=600,
        ...     environment_vars={"PYTHONPATH": "/app", "LOG_LEVEL": "INFO"},
        ... )
        >>> job.get_override_environment_variables_dict()
        {'PYTHONPATH': '/app', 'LOG_LEVEL': 'INFO'}
        >>> ContainerJob.objects.create_job(image="", docker_host=docker_host)
        Traceback (most recent call last):
        ...
        django.core.exceptions.ValidationError: {'docker_image': [...an image is required.']}
        """
        depends_on = hooks.call("resolve_dependencies", kwargs.pop("depends_on", None))
        array_size = hooks.call("check_array_size", kwargs.pop("array_size", None))
        submission.check_arguments(
            {"image": image, "command": command, "name": name, "environment_vars": environment_vars}
            | {key: kwargs[key] for key in kwargs.keys() & submission.BY_NAME.keys()}
        )
        template = _resolve_template(environment_template)
        override_text = kwargs.pop("override_environment", "") or ""
        if environment_vars:
            merged = _parse_field(override_text, "override_environment")
            merged.update(environment_vars)
            override_text = format_env_text(merged)
        if docker_host is None:
            docker_host = ExecutorHost.objects.choose()
            if docker_host is None:
                raise ValidationError(
                    {"docker_host": "docker_host: no active executor host exists."}
                )
        job = self.model(
            docker_image=image,
            command=command,
            name=name,
            environment_template=template,
            override_environment=override_text,
            docker_host=docker_host,
            array_size=array_size,
            **kwargs,
        )
        # Skipped checks that would each cost a SELECT: the host and the template are saved
        # rows (read just now or given as instances), and a fresh UUID key is unique.
        job.full_clean(exclude=_saved_relations(job), validate_unique=False)
        if depends_on or array_size:
            with transaction.atomic(using=self.db):
                job.save(using=self.db)
                hooks.call("workflow_submitted", job, depends_on)
        else:
            job.save(using=self.db)  # one INSERT: no transaction of its own is needed
            hooks.call("workflow_submitted", job, depends_on)
        return job


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
          (``container_manager.transitions``); a ``save()`` that changes
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
        - Workflows (``container_manager.workflows``): ``depends_on`` / ``dependents``
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
            "cancelled from any live status. Terminal statuses never change."
        ),
    )
    description = models.TextField(blank=True, default="", help_text="What the job does.")
    docker_image = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text=(
            "Image in standard form: 'python:3.11', 'nginx:latest', "
            "'registry.example.com/app:v1.2.3'. Required to submit a job."
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
    # -- workflows (container_manager.workflows) --
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
    has_dependents = models.BooleanField(
        default=False,
        editable=False,
        help_text="Some job waits for this one: its final move sends their launches.",
    )

    objects = JobManager()

    #: Fields written only by the steps; ``save()`` of an existing job leaves them alone.
    SYSTEM_FIELDS = frozenset(
        {
            "status", "execution_id", "exit_code", "started_at", "completed_at",
            "executor_metadata", "max_memory_usage", "cpu_usage_percent", "stdout_log",
            "stderr_log", "docker_log", "clean_output", "attempt_count", "run_after",
            "next_check_at", "lease_expires_at", "last_error", "cancel_requested_at",
            "stop_requested_at", "stop_reason", "waiting_for_host_since",
            "estimated_cost", "cost_currency", "has_dependents",
        }
    )  # fmt: skip

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "container job"
        permissions = [("view_all_jobs", "Can see every user's jobs through the API")]
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
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["array_parent", "array_index"], name="cjob_array_index_unique"
            )
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
                "use job.cancel(), job.launch() or the steps in container_manager.steps"
            )
        elif kwargs.get("update_fields") is None:
            kwargs["update_fields"] = _editable_field_names(self, self.SYSTEM_FIELDS)
        super().save(*args, **kwargs)
        self._loaded_status = current
        if adding:
            # The steps send the first launch once the row commits (steps.submitted).
            hooks.call("submitted", self, using=kwargs.get("using") or self._state.db)

    def refresh_from_db(self, *args: Any, **kwargs: Any) -> None:
        """Reload from the database (the truth), status included."""
        super().refresh_from_db(*args, **kwargs)
        self._loaded_status = self.__dict__.get("status")

    def clean(self) -> None:
        """Check what the field validators cannot: limits from settings, networks, host."""
        super().clean()
        errors: dict[str, str] = {}
        if not (self.docker_image or "").strip():
            errors["docker_image"] = "docker_image: an image is required."
        # full_clean() calls clean() even when a field failed to convert: check numbers only.
        low, high = setting("MIN_MEMORY_LIMIT_MB"), setting("MAX_MEMORY_LIMIT_MB")
        if _is_number(self.memory_limit) and not low <= self.memory_limit <= high:
            errors["memory_limit"] = f"memory_limit: must be between {low} and {high} MB."
        max_cpu = setting("MAX_CPU_LIMIT")
        if _is_number(self.cpu_limit) and self.cpu_limit > max_cpu:
            errors["cpu_limit"] = f"cpu_limit: must be at most {max_cpu} cores."
        max_timeout = setting("MAX_TIMEOUT_SECONDS")
        if _is_number(self.timeout_seconds) and not 1 <= self.timeout_seconds <= max_timeout:
            errors["timeout_seconds"] = f"timeout_seconds: must be between 1 and {max_timeout}."
        network_error = _network_configuration_error(self.network_configuration)
        if network_error:
            errors["network_configuration"] = network_error
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

    def _capability_errors(self, host: ExecutorHost) -> dict[str, str]:
        try:
            executor_class = ExecutorFactory.executor_class(host.executor_type)
        except ExecutorConfigurationError:
            return {}  # a type that cannot be imported fails at launch, naming the path
        return {
            field: f"{field}: host {host.name!r} ({host.executor_type}) {why}"
            for field, why in capabilities.missing(self, executor_class.capabilities).items()
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
        with limits needs one that supports resource limits.

        >>> job = ContainerJob(network_configuration=[{"network_name": "n"}])
        >>> job.can_use_executor("docker"), job.can_use_executor("cloudrun")
        (True, False)
        """
        try:
            executor_class = ExecutorFactory.executor_class(executor_type)
        except ExecutorConfigurationError:  # an unknown or broken type cannot be used
            return False
        return not capabilities.missing(self, executor_class.capabilities)

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
        True when the job reached a terminal status: completed, failed, timeout or cancelled.

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
        hooks.call("launch", self.pk)
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
            hooks.call("harvest", self.pk)
        self.refresh_from_db()
        return self.is_terminal_status

    def cancel(self) -> bool:
        """
        Ask for the job to be cancelled; the container is stopped by the ``cancel`` step.

        Returns:
            bool: True when the request was recorded (the job was live).
        """
        accepted = hooks.call("request_cancel", self.pk)
        self.refresh_from_db()
        return accepted

    def get_logs(self) -> str:
        """
        The job's logs: every attempt's stored output, oldest first.

        For a running job the current execution's output is read live from
        the platform. stdout comes before stderr within an attempt.
        """
        parts = [e.logs for e in self.containerexecution_set.order_by("attempt") if e.logs]
        if self.status == st.RUNNING and self.execution_id:
            stdout, stderr = ExecutorFactory().get_executor(self).get_logs(self.execution_id)
            parts.append(_join_logs(stdout, stderr))
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
        ``stdout_log`` and ``stderr_log`` are capped at ``LOG_MAX_BYTES`` each
        with a visible marker; ``logs`` joins them.

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

    @property
    def logs(self) -> str:
        """stdout followed by stderr of this attempt."""
        return _join_logs(self.stdout_log, self.stderr_log)

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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _join_logs(stdout: str, stderr: str) -> str:
    return stdout + stderr


def _editable_field_names(instance: models.Model, system_fields: frozenset[str]) -> list[str]:
    deferred = instance.get_deferred_fields()
    return [
        f.attname
        for f in instance._meta.concrete_fields
        if not f.primary_key and f.name not in system_fields and f.attname not in deferred
    ]


def _saved_relations(job: ContainerJob) -> list[str]:
    """The foreign keys of ``job`` set to instances already saved: their rows exist."""
    return [
        name
        for name in ("docker_host", "environment_template")
        if (related := getattr(job, name)) is not None and not related._state.adding
    ]


def _resolve_template(
    template: EnvironmentVariableTemplate | str | None,
) -> EnvironmentVariableTemplate | None:
    if template is None or isinstance(template, EnvironmentVariableTemplate):
        return template
    try:
        return EnvironmentVariableTemplate.objects.get(name=template)
    except EnvironmentVariableTemplate.DoesNotExist:
        raise ValidationError(
            {"environment_template": f"environment_template: no template named {template!r}."}
        ) from None


def _parse_field(text: str, field: str) -> dict[str, str]:
    try:
        return parse_env_text(text)
    except ValidationError as exc:
        raise ValidationError({field: [f"{field}: {m}" for m in exc.messages]}) from None


def _network_configuration_error(config: Any) -> str | None:
    if config in (None, []):
        return None
    if not isinstance(config, list):
        return "network_configuration: must be a list of {'network_name': ..., 'aliases': [...]}."
    for index, entry in enumerate(config):
        if not isinstance(entry, dict) or not isinstance(entry.get("network_name"), str):
            return f"network_configuration[{index}]: needs a 'network_name' string."
        if not entry["network_name"].strip():
            return f"network_configuration[{index}]: 'network_name' is empty."
        aliases = entry.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            return f"network_configuration[{index}]: 'aliases' must be a list of strings."
    return None


class JobDependency(models.Model):
    """
    An edge of a workflow: ``job`` launches only once ``depends_on`` has completed.

    Written by ``create_job(depends_on=...)`` through ``container_manager.workflows``,
    which refuses unknown jobs and cycles. When ``depends_on`` ends failed, timeout
    or cancelled, ``job`` ends cancelled. Deleting either job deletes the edge.
    """

    job = models.ForeignKey(
        ContainerJob,
        on_delete=models.CASCADE,
        related_name="dependency_links",
        help_text="The job that waits.",
    )
    depends_on = models.ForeignKey(
        ContainerJob,
        on_delete=models.CASCADE,
        related_name="dependent_links",
        help_text="The job it waits for.",
    )

    class Meta:
        verbose_name = "job dependency"
        verbose_name_plural = "job dependencies"
        constraints = [
            models.UniqueConstraint(fields=["job", "depends_on"], name="cjobdep_unique"),
            models.CheckConstraint(condition=~Q(job=F("depends_on")), name="cjobdep_not_self"),
        ]
        indexes = [models.Index(fields=["depends_on", "job"], name="cjobdep_reverse_idx")]

    def __str__(self) -> str:
        return f"{self.job_id} after {self.depends_on_id}"


class ArrayCounts(models.Model):
    """
    How many children of an array job have ended, by final status.

    Incremented with ``F()`` in the same transaction as each child's final move, so
    the count is exact under concurrent finishes; the move that makes the sum equal
    the array's size also moves the parent to its final status.
    """

    parent = models.OneToOneField(
        ContainerJob,
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="array_counts",
        help_text="The array job.",
    )
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    timeout = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "array counts"
        verbose_name_plural = "array counts"

    def __str__(self) -> str:
        return f"{self.parent_id}: {self.finished} ended"

    @property
    def finished(self) -> int:
        """Children that have ended, whatever their status."""
        return self.completed + self.failed + self.timeout + self.cancelled


class UsedSignature(models.Model):
    """
    An HMAC-signed push that was acted on: a replay of it is refused until it expires.

    Written by ``container_manager.auth`` after a signed step or sweep push
    succeeded (a retry after a failed attempt is therefore still accepted);
    expired rows are deleted by the sweep endpoint.
    """

    signature = models.CharField(max_length=64, unique=True, help_text="The HMAC hex digest.")
    expires_at = models.DateTimeField(db_index=True, help_text="When the signature's age ran out.")

    class Meta:
        verbose_name = "used request signature"

    def __str__(self) -> str:
        return f"{self.signature[:12]}… until {self.expires_at:%Y-%m-%d %H:%M:%S}"


# Models kept in their own modules, imported here so Django registers them with the app.
from container_manager.schedules import JobSchedule  # noqa: E402, F401
from container_manager.webhooks import WebhookDelivery, WebhookEndpoint  # noqa: E402, F401
