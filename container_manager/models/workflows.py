"""Workflow rows: the edges between jobs that wait for each other, and an array's counts.

The rules that read and write them are ``container_manager.workflows``'.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from container_manager.models.jobs import ContainerJob


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
