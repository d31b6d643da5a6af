"""Executor hosts and their slot rows: where jobs run and how many at once.

A host's capacity is its ``HostSlot`` rows; a job holds one while it launches or runs.
"""

from __future__ import annotations

import random
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connections, models, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from container_manager.executors.exceptions import ExecutorConfigurationError
from container_manager.executors.factory import (
    BUILTIN_EXECUTOR_TYPES,
    ExecutorFactory,
    executor_choices,
)


class ExecutorHostQuerySet(models.QuerySet):
    """Queries over hosts."""

    def available(self) -> ExecutorHostQuerySet:
        """Active hosts with a free slot (read from the slot rows)."""
        return self.filter(Exists(HostSlot.objects.free(OuterRef("pk"))), is_active=True)

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


class ExecutorHostManager(models.Manager.from_queryset(ExecutorHostQuerySet)):
    """``ExecutorHost.objects``: every host read carries ``current_job_count``, its held slots."""

    def get_queryset(self) -> ExecutorHostQuerySet:
        """Hosts annotated with ``current_job_count`` (a count of their held slot rows)."""
        held = HostSlot.objects.held_count(OuterRef("pk"))
        return super().get_queryset().annotate(current_job_count=held)


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

        ``current_job_count`` is the count of held slot rows, computed, not
        stored: ``ExecutorHost.objects`` annotates it (so it orders and filters,
        ``order_by("current_job_count")``), and a host loaded another way counts
        its rows when asked.

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

    objects = ExecutorHostManager()

    #: Fields written by the system, never by ``save()`` of an existing host.
    SYSTEM_FIELDS = frozenset(
        {
            "last_health_check_at", "last_health_ok", "last_health_error", "unreachable_since",
        }
    )  # fmt: skip

    class Meta:
        ordering = ["name"]
        verbose_name = "executor host"

    def __str__(self) -> str:
        return self.get_display_name()

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save the host's settings; its health, written by the steps, is never overwritten.

        The slot rows follow ``max_concurrent_jobs`` (``HostSlot.objects.sync``).
        """
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = editable_field_names(self, self.SYSTEM_FIELDS)
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
        """How many of the host's slot rows a job holds, read now."""
        return HostSlot.objects.filter(host_id=self.pk, job__isnull=False).count()

    @property
    def current_job_count(self) -> int:
        """Jobs launching or running here: the held slot rows, as annotated when the host was
        read through ``ExecutorHost.objects``, else counted now."""
        if "_current_job_count" in self.__dict__:
            return self.__dict__["_current_job_count"]
        return self.slots_in_use() if self.pk is not None else 0

    @current_job_count.setter
    def current_job_count(self, value: int) -> None:
        self.__dict__["_current_job_count"] = value

    def refresh_from_db(self, *args: Any, **kwargs: Any) -> None:
        """Reload the row; ``current_job_count`` is counted again when next asked."""
        self.__dict__.pop("_current_job_count", None)
        super().refresh_from_db(*args, **kwargs)

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


def editable_field_names(instance: models.Model, system_fields: frozenset[str]) -> list[str]:
    deferred = instance.get_deferred_fields()
    return [
        f.attname
        for f in instance._meta.concrete_fields
        if not f.primary_key and f.name not in system_fields and f.attname not in deferred
    ]
