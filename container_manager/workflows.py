"""Workflows on the steps: jobs that wait for other jobs, and arrays of jobs.

Every rule here is a condition on rows or a compare-and-set move, so it is safe twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef
from django.utils import timezone

from container_manager import dispatch, hooks
from container_manager.conf import setting
from container_manager.models import ArrayCounts, ContainerJob, HostSlot, JobDependency
from container_manager.models.jobs import unfinished_dependencies
from container_manager.rules import status as st
from container_manager.transitions import move

#: A dependency ending in one of these dooms the jobs that wait for it.
DOOMING = frozenset({st.FAILED, st.TIMEOUT, st.CANCELLED})
#: Hard upper bound of ``array_size``, whatever ``ARRAY_MAX_SIZE`` says.
ARRAY_LIMIT = 10_000
#: Environment variables a child's container gets on each platform, besides ``CM_ARRAY_*``.
PLATFORM_INDEX_VARIABLES = {"fargate": "AWS_BATCH_JOB_ARRAY_INDEX"}
#: Request fields a child copies from its parent (the rest are its own or the steps').
_NOT_COPIED = frozenset({"id", "created_at", "updated_at", "array_parent", "array_index"})


def resolve_dependencies(depends_on: Iterable[Any] | None) -> list[ContainerJob]:
    """The stored jobs that ``depends_on`` names (jobs or ids), each once; else a ValidationError.

    >>> resolve_dependencies(None)
    []
    >>> resolve_dependencies(["not-an-id"])
    Traceback (most recent call last):
    ...
    django.core.exceptions.ValidationError: {'depends_on': [...'not-an-id' is not a job id."]}
    """
    if depends_on is None:
        return []
    if isinstance(depends_on, str | bytes | ContainerJob) or not isinstance(depends_on, Iterable):
        raise ValidationError({"depends_on": "depends_on: must be a list of jobs or job ids."})
    wanted: dict[uuid.UUID, None] = {}
    for item in depends_on:
        wanted[_job_id(item)] = None
    found = {job.pk: job for job in ContainerJob.objects.filter(pk__in=list(wanted))}
    missing = [str(pk) for pk in wanted if pk not in found]
    if missing:
        raise ValidationError({"depends_on": f"depends_on: no job {', '.join(missing)}."})
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


def submitted(job: ContainerJob, depends_on: list[ContainerJob]) -> None:
    """Write a new job's dependency edges and, for an array, its counts and children.

    Runs in ``create_job``'s transaction, after the job's row is saved. A job whose
    dependency already failed ends cancelled at once; an array parent's children
    are cancelled by their own launch step.
    """
    _link(job, depends_on, check_cycles=False)
    if job.is_array_parent:
        ArrayCounts.objects.create(parent=job)
        ContainerJob.objects.bulk_create(_children(job))


def add_dependencies(job: ContainerJob, depends_on: Iterable[Any]) -> None:
    """Make a pending job wait for more jobs; a cycle or an unknown id is a ValidationError.

    Nothing is stored when it is refused. Meant for jobs that cannot launch yet
    (waiting for other jobs, or ``run_after`` later): a launch already past its
    dependency check when the edge is written goes on.
    """
    if job.status != st.PENDING:
        raise ValidationError({"depends_on": f"depends_on: job {job.pk} is {job.status}."})
    jobs = resolve_dependencies(depends_on)
    with transaction.atomic():
        _link(job, jobs, check_cycles=True)
    if jobs:
        dispatch.send_on_commit("launch", job.pk)


def array_environment(job: ContainerJob) -> dict[str, str]:
    """Variables that tell an array child which shard it is (its host's convention included).

    Empty for any other job. The steps add them to the launch request's environment.
    """
    if job.array_parent_id is None:
        return {}
    environment = {"CM_ARRAY_INDEX": str(job.array_index), "CM_ARRAY_SIZE": str(job.array_size)}
    platform = PLATFORM_INDEX_VARIABLES.get(job.docker_host.executor_type)
    if platform:
        environment[platform] = str(job.array_index)
    return environment


def annotations() -> dict[str, Exists]:
    """For the steps' job SELECT: whether the job (or its array parent) waits for any job."""
    return {"has_unfinished_dependencies": Exists(unfinished_dependencies())}


def launch_gate(job: ContainerJob) -> str | None:
    """What stops a pending job from launching now, as the launch step's answer; None if nothing.

    A job whose dependency ended failed, timeout or cancelled is moved to cancelled.
    An array parent never launches: it starts its children (or has them cancelled).
    A job loaded with ``annotations()`` that has no unfinished dependency costs no query.
    """
    blocking = _blocking(job) if getattr(job, "has_unfinished_dependencies", True) else []
    doomed = next((dep for dep in blocking if dep["status"] in DOOMING), None)
    if job.is_array_parent:
        if job.cancel_requested_at:
            return cancel_array(job)
        if doomed:
            _send_launches(job.array_children.filter(status=st.PENDING))
            return "cancelling-children"
        if blocking:
            return "waiting-for-dependencies"
        _start_children(job)
        return "array-parent"
    if doomed:
        return _doom(job, doomed)
    return "waiting-for-dependencies" if blocking else None


def cancel_array(parent: ContainerJob) -> str:
    """Ask every live child of an array to cancel; the parent ends when the last child does."""
    now = timezone.now()
    live = parent.array_children.filter(status__in=st.LIVE)
    live.filter(cancel_requested_at__isnull=True).update(cancel_requested_at=now, updated_at=now)
    ids = live.filter(cancel_requested_at=now).values_list("pk", flat=True)
    dispatch.send_many_on_commit([("cancel", pk, 0) for pk in ids])
    return "cancelling-children"


def job_moved(job: ContainerJob, new: str) -> None:
    """Carry a move over to the array and the dependents; runs inside the move's transaction.

    A child's first run marks its parent running; a child's final move adds one to
    the parent's counts, and the last one moves the parent. A final move sends
    ``launch`` to the dependents that became ready or doomed, after the commit (so
    two dependencies finishing at once cannot both miss the other's move), if the
    row says any job waits for this one (``has_dependents``, which ``move`` re-reads).
    """
    if job.array_parent_id is not None:
        if new == st.RUNNING:
            _parent_running(job.array_parent_id)
        elif new in st.TERMINAL:
            _count_child(job, new)
    if new in st.TERMINAL and job.has_dependents:
        transaction.on_commit(lambda: release_dependents(job.pk, new))


def release_dependents(job_id: Any, status: str) -> int:
    """Send ``launch`` to the pending jobs waiting for ``job_id`` that it made ready or doomed.

    Returns how many were sent. The launch step decides: start, wait, or cancel.
    """
    waiting = ContainerJob.objects.filter(dependency_links__depends_on_id=job_id, status=st.PENDING)
    if status == st.COMPLETED:
        waiting = waiting.filter(~Exists(unfinished_dependencies()))
    return _send_launches(waiting)


def doomed(settled: Any) -> Any:
    """Pending jobs with a dependency that ended badly before ``settled``: one indexed query."""
    bad = JobDependency.objects.filter(
        job_id=OuterRef("pk"), depends_on__status__in=DOOMING, depends_on__updated_at__lte=settled
    )
    return ContainerJob.objects.filter(Exists(bad), status=st.PENDING).order_by("created_at")


def status_counts(parent: ContainerJob) -> dict[str, int]:
    """How many children of an array are in each status now (every status named, zeros too)."""
    counts = dict.fromkeys((value for value, _ in st.STATUS_CHOICES), 0)
    rows = parent.array_children.order_by().values_list("status").annotate(n=Count("pk"))
    counts.update(dict(rows))
    return counts


def api_fields(job: ContainerJob) -> dict[str, Any]:
    """What the JSON API tells about a job's place in a workflow (counts for an array parent)."""
    array = None
    if job.array_size is not None:
        array = {
            "size": job.array_size,
            "index": job.array_index,
            "parent": str(job.array_parent_id) if job.array_parent_id else None,
        }
        if job.is_array_parent:
            array["counts"] = status_counts(job)
    return {
        "depends_on": [str(link.depends_on_id) for link in job.dependency_links.all()],
        "array": array,
    }


def final_status(counts: ArrayCounts) -> str:
    """The parent's status once every child ended: completed, failed or cancelled.

    >>> cases = [{"completed": 3}, {"completed": 2, "timeout": 1}, {"completed": 1, "cancelled": 2}]
    >>> [str(final_status(ArrayCounts(**counts))) for counts in cases]
    ['completed', 'failed', 'cancelled']
    """
    if counts.finished == counts.completed:
        return st.COMPLETED
    return st.FAILED if counts.failed + counts.timeout else st.CANCELLED


# -- helpers --------------------------------------------------------------------


def _job_id(item: Any) -> uuid.UUID:
    if isinstance(item, ContainerJob):
        if item._state.adding:
            raise ValidationError({"depends_on": "depends_on: a job must be saved first."})
        return item.pk
    try:
        return item if isinstance(item, uuid.UUID) else uuid.UUID(str(item))
    except ValueError:
        raise ValidationError({"depends_on": f"depends_on: {item!r} is not a job id."}) from None


def _link(job: ContainerJob, depends_on: list[ContainerJob], check_cycles: bool) -> None:
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
    ContainerJob.objects.filter(pk__in=ids, has_dependents=False).update(has_dependents=True)
    doomed = next((dep for dep in depends_on if dep.status in DOOMING), None)
    if doomed and not job.is_array_parent:
        _doom(job, {"pk": doomed.pk, "name": doomed.name, "status": doomed.status})


def _reaches(start: set[uuid.UUID], target: uuid.UUID) -> bool:
    """True when ``target`` is upstream of ``start``: two queries per level of the graph.

    An array child waits for what its parent waits for, so a child leads to its parent.
    """
    seen, frontier = set(start), set(start)
    while frontier:
        parents = ContainerJob.objects.filter(pk__in=frontier, array_parent__isnull=False)
        frontier |= set(parents.values_list("array_parent_id", flat=True))
        edges = JobDependency.objects.filter(job_id__in=frontier)
        upstream = set(edges.values_list("depends_on_id", flat=True))
        if target in frontier | upstream:
            return True
        seen |= frontier
        frontier = upstream - seen
    return False


def _children(parent: ContainerJob) -> list[ContainerJob]:
    copied = {
        f.attname: getattr(parent, f.attname)
        for f in parent._meta.concrete_fields
        if f.name not in _NOT_COPIED and f.name not in ContainerJob.SYSTEM_FIELDS
    }
    copied["run_after"] = parent.run_after
    base = parent.name or parent.docker_image
    return [
        ContainerJob(
            **{**copied, "name": f"{base}[{index}]"}, array_parent=parent, array_index=index
        )
        for index in range(parent.array_size)
    ]


def _blocking(job: ContainerJob) -> list[dict[str, Any]]:
    owners = [pk for pk in (job.pk, job.array_parent_id) if pk is not None]
    return list(
        ContainerJob.objects.filter(dependent_links__job_id__in=owners)
        .exclude(status=st.COMPLETED)
        .order_by("completed_at")
        .values("pk", "name", "status")
    )


def _doom(job: ContainerJob, dependency: dict[str, Any]) -> str:
    name = f" ({dependency['name']})" if dependency["name"] else ""
    moved = move(
        job, st.PENDING, st.CANCELLED, guard={"attempt_count": job.attempt_count},
        completed_at=timezone.now(),
        last_error=f"dependency {dependency['pk']}{name} ended {dependency['status']}",
    )  # fmt: skip
    return st.CANCELLED if moved else "taken"


def _send_launches(queryset: Any) -> int:
    ids = list(queryset.values_list("pk", flat=True))
    dispatch.send_many_on_commit([("launch", pk, 0) for pk in ids])
    return len(ids)


def _start_children(parent: ContainerJob) -> None:
    """Send launch to as many pending children as the host has free slots; kicks do the rest."""
    free = HostSlot.objects.free(parent.docker_host_id).count()
    children = parent.array_children.filter(status=st.PENDING).order_by("array_index")
    _send_launches(children[:free])


def _parent_running(parent_id: Any) -> None:
    parent = ContainerJob.objects.filter(pk=parent_id, status=st.PENDING).first()
    if parent is not None:
        move(parent, st.PENDING, st.RUNNING, started_at=timezone.now())


def _count_child(child: ContainerJob, status: str) -> None:
    # The row lock this update takes serializes finishing children: the one whose
    # increment completes the sum is the only one that sees it complete.
    column = str(status)
    ArrayCounts.objects.filter(pk=child.array_parent_id).update(**{column: F(column) + 1})
    counts = ArrayCounts.objects.get(pk=child.array_parent_id)
    if counts.finished < child.array_size:
        return
    parent = ContainerJob.objects.get(pk=child.array_parent_id)
    if parent.status in st.TERMINAL:
        return
    summary = (
        f"{counts.completed} completed, {counts.failed} failed, "
        f"{counts.timeout} timed out, {counts.cancelled} cancelled"
    )
    final = final_status(counts)
    move(
        parent, parent.status, final, completed_at=timezone.now(),
        last_error="" if final == st.COMPLETED else f"array children: {summary}",
    )  # fmt: skip


hooks.bind(
    resolve_dependencies=resolve_dependencies,
    check_array_size=check_array_size,
    workflow_submitted=submitted,
    job_moved=job_moved,
)
