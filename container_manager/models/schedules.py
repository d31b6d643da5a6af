"""The ``JobSchedule`` model: a cron line in a time zone and the job it makes at each time.

The sweep fires due schedules (``container_manager.engine.firing``); this module only stores them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from container_manager.rules import contract, cron
from container_manager.rules.envtext import validate_env_text

ALLOW, SKIP, REPLACE = "allow", "skip", "replace"
OVERLAP_CHOICES = [
    (ALLOW, "Allow: start a new job even if the previous one is still live"),
    (SKIP, "Skip: no new job while the previous one is live"),
    (REPLACE, "Replace: cancel the previous job, then start"),
]

#: The job fields of a schedule, each with the submit field (``rules.contract``) it is.
JOB_FIELDS = {
    "docker_image": "docker_image",
    "command": "command",
    "job_name": "name",
    "memory_limit": "memory_limit",
    "cpu_limit": "cpu_limit",
    "timeout_seconds": "timeout_seconds",
}


class JobSchedule(models.Model):
    """
    A recurring job: at each time ``cron`` names, in ``timezone``, the sweep submits a job.

    ``next_run_at`` is computed on save from ``cron`` and ``timezone`` (and cleared while
    the schedule is disabled); the sweep advances it with a compare-and-set, so each
    scheduled time makes its job once even when sweeps run at the same moment.

    ``owner`` is the user whose jobs it makes: it sees the schedule and its jobs (as the job
    API's rule, ``models.owners``, says) and must be active and hold ``add_containerjob``
    for it to fire. ``None`` (a schedule made by trusted code, or before owners existed)
    fires as trusted code did. A name is unique among one owner's schedules. The job
    fields obey the submit contract of ``create_job`` at save.

    >>> schedule = JobSchedule(name="nightly", cron="@daily", timezone="Europe/Berlin",
    ...                        docker_image="alpine:latest", command="echo hi")
    >>> schedule.full_clean()
    >>> from datetime import datetime, timezone as tz
    >>> schedule.reschedule(datetime(2026, 3, 28, 12, tzinfo=tz.utc))
    >>> schedule.next_run_at.isoformat()
    '2026-03-28T23:00:00+00:00'
    >>> JobSchedule(name="x", cron="@often", docker_image="a").full_clean()
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: {'cron': ["cron: '@often' must have five fields ...
    """

    name = models.CharField(max_length=200, help_text="Unique among the owner's schedules.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="job_schedules",
        help_text="Whose jobs it makes; empty: made by trusted code. Deleting the user "
        "deletes their schedules, so none fires as nobody.",
    )
    cron = models.CharField(
        max_length=200,
        help_text="Five fields (minute hour day month weekday) or @hourly, @daily, @weekly, "
        "@monthly.",
    )
    timezone = models.CharField(
        max_length=64, default="UTC", help_text="IANA time zone the cron times are read in."
    )
    enabled = models.BooleanField(default=True, help_text="Disabled schedules make no jobs.")
    overlap = models.CharField(
        max_length=10,
        choices=OVERLAP_CHOICES,
        default=ALLOW,
        help_text="What to do when a run is due and the previous job is still live.",
    )
    catchup = models.PositiveIntegerField(
        default=1,
        validators=[MaxValueValidator(100)],
        help_text="How many missed runs to make after downtime (0 = none).",
    )
    job_name = models.CharField(
        max_length=200, blank=True, default="", help_text="Name of the jobs; blank: the schedule's."
    )
    docker_image = models.CharField(max_length=500, help_text="Image of the jobs.")
    command = models.TextField(blank=True, default="", help_text="Command of the jobs.")
    docker_host = models.ForeignKey(
        "container_manager.ExecutorHost",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="schedules",
        help_text="Where the jobs run; blank: any active host.",
    )
    memory_limit = models.PositiveIntegerField(null=True, blank=True, help_text="In MB.")
    cpu_limit = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.1), MaxValueValidator(32.0)],
        help_text="In cores.",
    )
    timeout_seconds = models.PositiveIntegerField(default=3600, help_text="Timeout of each job.")
    environment_template = models.ForeignKey(
        "container_manager.EnvironmentVariableTemplate",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="schedules",
    )
    override_environment = models.TextField(
        blank=True, default="", validators=[validate_env_text], help_text="KEY=value lines."
    )
    next_run_at = models.DateTimeField(
        null=True, blank=True, help_text="The next time the schedule fires; empty while disabled."
    )
    last_run_at = models.DateTimeField(
        null=True, blank=True, help_text="The scheduled time of the last job made."
    )
    last_job = models.ForeignKey(
        "container_manager.ContainerJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The last job this schedule made (the one overlap looks at).",
    )
    last_outcome = models.TextField(
        blank=True, default="", help_text="What the last run did: the job it made, or why none."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    #: Fields written by the sweep; ``save()`` of an existing schedule leaves them alone.
    SYSTEM_FIELDS = frozenset({"next_run_at", "last_run_at", "last_job", "last_outcome"})

    class Meta:
        ordering = ["name"]
        verbose_name = "job schedule"
        indexes = [
            models.Index(
                fields=["next_run_at"],
                name="cjsched_due_idx",
                condition=Q(enabled=True),
            )
        ]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="cjsched_owner_name_unique"),
            models.UniqueConstraint(
                fields=["name"], name="cjsched_unowned_name_unique", condition=Q(owner__isnull=True)
            ),
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Not for a row loaded with these fields deferred (a cascade's collector loads keys
        # only): reading them would load each one; such a copy is rescheduled if saved.
        loaded = self.pk and not {"cron", "timezone", "enabled"} & self.get_deferred_fields()
        self._computed_for = self._timing() if loaded else None
        self._rescheduled = False

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save the settings; ``next_run_at`` is recomputed when cron, zone or ``enabled`` changed.

        The sweep's fields are never written from an existing schedule's copy, so an
        edit made from a stale copy cannot make a time fire twice. Job fields the submit
        contract refuses (among those written) raise ``ValidationError`` naming the field.
        """
        written = kwargs.get("update_fields")
        errors = self.job_field_errors(None if written is None else set(written))
        if errors:
            raise ValidationError(errors)
        if self._computed_for != self._timing():
            cron.expand(self.cron)
            cron.zone(self.timezone)
            self.reschedule(timezone.now())
        if not self._state.adding:
            fields = kwargs.get("update_fields")
            if fields is None:
                fields = [
                    f.attname
                    for f in self._meta.concrete_fields
                    if not f.primary_key and f.name not in self.SYSTEM_FIELDS
                ]
            kwargs["update_fields"] = {*fields, "next_run_at"} if self._rescheduled else fields
        super().save(*args, **kwargs)
        self._rescheduled = False

    def clean(self) -> None:
        """Check the cron text, the time zone, the job fields and the name among the owner's.

        Errors name the field; a name taken by another owner's schedule is no error, so
        a caller never learns the names of schedules it cannot see.
        """
        super().clean()
        errors: dict[str, Any] = {}
        for check, value in ((cron.expand, self.cron), (cron.zone, self.timezone)):
            try:
                check(value)
            except ValidationError as exc:
                errors.update(exc.message_dict)
        errors.update(self.job_field_errors())
        clash = self.name_clash()
        if clash:
            errors["name"] = clash
        if errors:
            raise ValidationError(errors)

    def validate_constraints(self, exclude: Any = None) -> None:
        """Every constraint but the two on names, which ``clean`` reports as a ``name`` error."""
        super().validate_constraints(exclude={*(exclude or ()), "name"})

    def job_field_errors(self, names: set[str] | None = None) -> dict[str, str]:
        """``{field: message}`` for each job field (of ``names``) the submit contract refuses.

        The contract is ``create_job``'s (``rules.contract``), so limits its jobs would be
        refused for fail at save, not at every firing. A value of the wrong type is left to
        its model field's validation.

        >>> JobSchedule(docker_image="x", memory_limit=10**9).job_field_errors()
        {'memory_limit': 'memory_limit: must be between 6 and 2048 MB.'}
        """
        errors = {}
        for attname, submit in JOB_FIELDS.items():
            if names is not None and attname not in names:
                continue
            value, spec = getattr(self, attname), contract.BY_NAME[submit]
            if value is None or isinstance(value, str) != (spec.kind == "string"):
                continue
            problem = spec.error(value)
            if problem:
                errors[attname] = f"{attname}: {problem}"
        return errors

    def name_clash(self) -> str | None:
        """The error when another schedule of the same owner (or none) has this name, or None.

        Only the owner's own schedules are looked at: the answer tells nothing of others'.
        """
        if not self.name:
            return None
        mine = JobSchedule.objects.filter(owner_id=self.owner_id, name=self.name)
        if self.pk:
            mine = mine.exclude(pk=self.pk)
        if not mine.exists():
            return None
        return f"name: the owner already has a schedule named {self.name[:200]!r}."

    def reschedule(self, now: datetime) -> None:
        """Set ``next_run_at`` to the first time after ``now`` (None while disabled or never)."""
        times = self.upcoming(now, 1) if self.enabled else []
        self.next_run_at = times[0].astimezone(UTC) if times else None
        self._computed_for = self._timing()
        self._rescheduled = True  # the next save writes it

    def upcoming(self, after: datetime, count: int = 5) -> list[datetime]:
        """The next ``count`` times after ``after``, in the schedule's zone."""
        return cron.following(self.cron, self.timezone, after, count)

    def _timing(self) -> tuple[str, str, bool]:
        return (self.cron, self.timezone, self.enabled)
