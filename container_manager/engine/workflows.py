"""Workflows on the steps: jobs that wait for other jobs, and arrays of jobs.

Every rule here is a condition on rows or a compare-and-set move, so it is safe twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Exists, OuterRef
from django.utils import timezone

from container_manager import dispatch
from container_manager.engine.transitions import move, send_launches
from container_manager.models import ContainerJob, HostSlot, JobDependency
from container_manager.models.manager import unfinished_dependencies
from container_manager.models.workflows import link, resolve_dependencies
from container_manager.rules import status as st

#: A dependency ending in one of these dooms the jobs that wait for it.
DOOMING = frozenset({st.FAILED, st.TIMEOUT, st.CANCELLED})
#: Environment variables a child's container gets on each platform, besides ``CM_ARRAY_*``.
PLATFORM_INDEX_VARIABLES = {"fargate": "AWS_BATCH_JOB_ARRAY_INDEX"}


def add_dependencies(job: ContainerJob, depends_on: Iterable[Any]) -> None:
    """Make a pending job wait for more jobs; a cycle or an unknown id is a ValidationError.

    Each must be a job that ``job``'s submitter (``created_by``) may view; one they may not
    is refused like an unknown id.

    Nothing is stored when it is refused. Meant for jobs that cannot launch yet
    (waiting for other jobs, or ``run_after`` later): a launch already past its
    dependency check when the edge is written goes on.
    """
    if job.status != st.PENDING:
        raise ValidationError({"depends_on": f"depends_on: job {job.pk} is {job.status}."})
    jobs = resolve_dependencies(depends_on, job.created_by)
    with transaction.atomic():
        link(job, jobs, check_cycles=True)
        doomed = next((dep for dep in jobs if dep.status in DOOMING), None)
        if doomed and not job.is_array_parent:
            _doom(job, {"pk": doomed.pk, "name": doomed.name, "status": doomed.status})
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
            send_launches(job.array_children.filter(status=st.PENDING))
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


def _start_children(parent: ContainerJob) -> None:
    """Send launch to as many pending children as the host has free slots; kicks do the rest."""
    free = HostSlot.objects.free(parent.docker_host_id).count()
    children = parent.array_children.filter(status=st.PENDING).order_by("array_index")
    send_launches(children[:free])
