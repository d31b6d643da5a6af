"""Workflow rows and what a submit writes of them: dependency edges, an array's counts and children.

What happens when jobs move (release, counts, the parent's end) is the engine's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from container_manager.conf import setting
from container_manager.models.owners import owned_by
from container_manager.rules import status as st


class JobDependency(models.Model):
    """
    An edge of a workflow: ``job`` launches only once ``depends_on`` has completed.

    Written by ``create_job(depends_on=...)`` through ``container_manager.engine.workflows``,
    which refuses unknown jobs, jobs the submitter may not view, and cycles. When
    ``depends_on`` ends failed, timeout or cancelled, ``job`` ends cancelled. Deleting
    either job deletes the edge.
    """

    job = models.ForeignKey(
        "ContainerJob",
        on_delete=models.CASCADE,
        related_name="dependency_links",
        help_text="The job that waits.",
    )
    depends_on = models.ForeignKey(
        "ContainerJob",
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
        "ContainerJob",
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


#: Hard upper bound of ``array_size``, whatever ``ARRAY_MAX_SIZE`` says.
ARRAY_LIMIT = 10_000
#: Request fields a child copies from its parent (the rest are its own or the steps').
#: How many missing dependency ids an error names; the rest are counted.
NAMED_IDS = 3
_NOT_COPIED = frozenset({"id", "created_at", "updated_at", "array_parent", "array_index"})


def resolve_dependencies(
    depends_on: Iterable[Any] | None, viewer: Any = None
) -> list[models.Model]:
    """The jobs that ``depends_on`` names (jobs or ids) and ``viewer`` may see, each once.

    ``viewer`` is the submitter (``models.owners``; None: trusted code sees every job). A job
    the viewer may not see is refused exactly like an unknown id (one SELECT of the jobs,
    filtered by visibility), so the answer never tells that it exists. The message names
    the first ``NAMED_IDS`` missing ids and counts the rest.

    >>> resolve_dependencies(None)
    []
    >>> resolve_dependencies(["not-an-id"])
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: {'depends_on': [...'not-an-id' is not a job id."]}
    """
    if depends_on is None:
        return []
    if isinstance(depends_on, str | bytes | _jobs()) or not isinstance(depends_on, Iterable):
        raise ValidationError({"depends_on": "depends_on: must be a list of jobs or job ids."})
    wanted: dict[uuid.UUID, None] = {}
    for item in depends_on:
        wanted[_job_id(item)] = None
    if not wanted:
        return []
    visible = owned_by(_jobs().objects.filter(pk__in=list(wanted)), viewer)
    found = {job.pk: job for job in visible}
    missing = [str(pk) for pk in wanted if pk not in found]
    if missing:
        raise ValidationError({"depends_on": f"depends_on: no job {_some(missing)}."})
    return [found[pk] for pk in wanted]


def check_array_size(array_size: Any) -> int | None:
    """``array_size`` if it is an allowed size (2 … ``ARRAY_MAX_SIZE``), None if not given.

    >>> check_array_size(None), check_array_size(3)
    (None, 3)
    >>> check_array_size(1)
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: {'array_size': [...from 2 to 10000.']}
    """
    if array_size is None:
        return None
    high = min(setting("ARRAY_MAX_SIZE"), ARRAY_LIMIT)
    if not isinstance(array_size, int) or isinstance(array_size, bool):
        raise ValidationError({"array_size": f"array_size: must be an integer from 2 to {high}."})
    if not 2 <= array_size <= high:
        raise ValidationError({"array_size": f"array_size: must be an integer from 2 to {high}."})
    return array_size


def submitted(job: models.Model, depends_on: list[models.Model]) -> None:
    """Write a new job's dependency edges and, for an array, its counts and children.

    Runs in ``create_job``'s transaction, after the job's row is saved. A job whose
    dependency already failed is cancelled by its first launch, an array parent's
    children by their own.
    """
    link(job, depends_on, check_cycles=False)
    if job.is_array_parent:
        ArrayCounts.objects.create(parent=job)
        _jobs().objects.bulk_create(_children(job))


def link(job: models.Model, depends_on: list[models.Model], check_cycles: bool) -> None:
    """Write the edges that make ``job`` wait for ``depends_on``; a cycle is a ValidationError.

    A dependency that already ended badly dooms ``job``: its launch step cancels it.
    """
    if not depends_on:
        return
    ids = {dep.pk for dep in depends_on}
    if job.pk in ids or (check_cycles and _reaches(ids, job.pk)):
        raise ValidationError(
            {"depends_on": f"depends_on: job {job.pk} would wait for itself (a cycle)."}
        )
    JobDependency.objects.bulk_create(
        [JobDependency(job=job, depends_on=dep) for dep in depends_on], ignore_conflicts=True
    )
    # On the dependencies' rows, so a final move in flight and this transaction serialise:
    # either the move sees the flag (``transitions.move``) or this job's launch sees it ended.
    _jobs().objects.filter(pk__in=ids, has_dependents=False).update(has_dependents=True)


def final_status(counts: ArrayCounts) -> str:
    """The parent's status once every child ended: completed, failed or cancelled.

    >>> cases = [{"completed": 3}, {"completed": 2, "timeout": 1}, {"completed": 1, "cancelled": 2}]
    >>> [str(final_status(ArrayCounts(**counts))) for counts in cases]
    ['completed', 'failed', 'cancelled']
    """
    if counts.finished == counts.completed:
        return st.COMPLETED
    return st.FAILED if counts.failed + counts.timeout else st.CANCELLED


def _jobs() -> type[models.Model]:
    """``ContainerJob``, which this module's rows point at (imported above it, not here)."""
    return JobDependency._meta.get_field("job").related_model


def _job_id(item: Any) -> uuid.UUID:
    if isinstance(item, _jobs()):
        if item._state.adding:
            raise ValidationError({"depends_on": "depends_on: a job must be saved first."})
        return item.pk
    try:
        return item if isinstance(item, uuid.UUID) else uuid.UUID(str(item))
    except ValueError:
        raise ValidationError({"depends_on": f"depends_on: {item!r} is not a job id."}) from None


def _some(ids: list[str]) -> str:
    """The first ``NAMED_IDS`` of ``ids``, and how many more: an answer of bounded size.

    >>> _some(["a", "b"]), _some(["a", "b", "c", "d", "e"])
    ('a, b', 'a, b, c and 2 more')
    """
    named = ", ".join(ids[:NAMED_IDS])
    return f"{named} and {len(ids) - NAMED_IDS} more" if len(ids) > NAMED_IDS else named


def _reaches(start: set[uuid.UUID], target: uuid.UUID) -> bool:
    """True when ``target`` is upstream of ``start``: two queries per level of the graph.

    An array child waits for what its parent waits for, so a child leads to its parent.
    """
    seen, frontier = set(start), set(start)
    while frontier:
        parents = _jobs().objects.filter(pk__in=frontier, array_parent__isnull=False)
        frontier |= set(parents.values_list("array_parent_id", flat=True))
        edges = JobDependency.objects.filter(job_id__in=frontier)
        upstream = set(edges.values_list("depends_on_id", flat=True))
        if target in frontier | upstream:
            return True
        seen |= frontier
        frontier = upstream - seen
    return False


def _children(parent: models.Model) -> list[models.Model]:
    copied = {
        f.attname: getattr(parent, f.attname)
        for f in parent._meta.concrete_fields
        if f.name not in _NOT_COPIED and f.name not in parent.SYSTEM_FIELDS
    }
    copied["run_after"] = parent.run_after
    base = parent.name or parent.docker_image
    return [
        type(parent)(
            **{**copied, "name": f"{base}[{index}]"}, array_parent=parent, array_index=index
        )
        for index in range(parent.array_size)
    ]
