"""Workflows on the steps: jobs that wait for other jobs, and arrays of jobs.

Every rule here is a condition on rows or a compare-and-set move, so it is safe twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from container_manager import dispatch
from container_manager.conf import setting
from container_manager.engine.transitions import move, send_launches
from container_manager.models import ContainerJob, HostSlot, JobDependency
from container_manager.models.manager import unfinished_dependencies
from container_manager.models.workflows import dead_edges, fired_edges, link, resolve_dependencies
from container_manager.rules import array_limits, results
from container_manager.rules import status as st

#: Environment variables a child's container gets on each platform, besides ``CM_ARRAY_*``.
PLATFORM_INDEX_VARIABLES = {"fargate": "AWS_BATCH_JOB_ARRAY_INDEX"}


def add_dependencies(job: ContainerJob, depends_on: Iterable[Any]) -> None:
    """Make a pending job wait for more jobs; a cycle or an unknown id is a ValidationError.

    Items as ``create_job``'s ``depends_on``: a job or id, or a pair ``(job or id,
    condition)``. Each must be a job that ``job``'s submitter (``created_by``) may view; one
    they may not is refused like an unknown id.

    Nothing is stored when it is refused. Meant for jobs that cannot launch yet
    (waiting for other jobs, or ``run_after`` later): a launch already past its
    dependency check when the edge is written goes on.
    """
    if job.status != st.PENDING:
        raise ValidationError({"depends_on": f"depends_on: job {job.pk} is {job.status}."})
    jobs = resolve_dependencies(depends_on, job.created_by)
    with transaction.atomic():
        link(job, jobs, check_cycles=True)
        doomed = next(((d, c) for d, c in jobs if st.edge_fires(c, d.status) is False), None)
        if doomed and not job.is_array_parent:
            dep, condition = doomed
            _doom(job, {"pk": dep.pk, "name": dep.name, "status": dep.status, "on": condition})
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


def input_environment(job: ContainerJob) -> tuple[dict[str, str], str]:
    """``CM_INPUT_<NODE>`` for each job that ``job`` (or its array parent) depends on that
    stored a result, read from the rows at each launch; or ``{}`` and why they cannot be given.

    ``<NODE>`` is the dependency's node name, else its job name, else its id
    (``rules.results.input_variable``). More than ``WORKFLOW_INPUTS_MAX_BYTES`` is refused,
    never cut. A job loaded with ``annotations()`` none of whose dependencies has a result
    costs no query.
    """
    if not getattr(job, "has_inputs", True):
        return {}, ""
    owners = [pk for pk in (job.id, job.array_parent_id) if pk is not None]
    rows = (
        JobDependency.objects.filter(job_id__in=owners, depends_on__result__isnull=False)
        .order_by("depends_on__created_at")
        .values_list(
            "depends_on__workflow_node", "depends_on__name", "depends_on_id", "depends_on__result"
        )
    )
    pairs = [(node or name or str(pk), value) for node, name, pk, value in rows]
    return results.input_environment(pairs, setting("WORKFLOW_INPUTS_MAX_BYTES"))


def produced(job: ContainerJob, status: str) -> tuple[str, dict[str, Any]]:
    """The final status of a job that ended as ``status``, and the result fields its final move
    writes: none without ``returns_result``; its ``result`` when it completed with a JSON last
    line within ``WORKFLOW_OUTPUT_MAX_BYTES``; ``failed`` and a ``last_error`` naming the rule
    when it completed without one.
    """
    if not job.returns_result:
        return status, {}
    if status != st.COMPLETED:
        return status, {"result": None}
    value, problem = results.read_result(job.clean_output, setting("WORKFLOW_OUTPUT_MAX_BYTES"))
    if problem:
        return str(st.FAILED), {"result": None, "last_error": problem}
    return status, {"result": value}


def annotations() -> dict[str, Exists]:
    """For the steps' job SELECT: whether the job (or its array parent) waits for any job, and
    whether a job it depends on has a result (``input_environment``)."""
    return {
        "has_unfinished_dependencies": Exists(unfinished_dependencies()),
        "has_inputs": Exists(
            JobDependency.objects.filter(
                Q(job_id=OuterRef("pk")) | Q(job_id=OuterRef("array_parent_id")),
                depends_on__result__isnull=False,
            )
        ),
    }


def launch_gate(job: ContainerJob) -> str | None:
    """What stops a pending job from launching now, as the launch step's answer; None if nothing.

    A job with an edge that can no longer fire (its dependency ended in a status the edge's
    condition does not fire on) ends ``skipped`` in a workflow, ``cancelled`` outside one.
    An array parent never launches: it starts its children (or has them cancelled; a doomed
    workflow node's parent ends ``skipped`` first). A job loaded with ``annotations()`` that
    has no edge left to fire costs no query.
    """
    blocking = _blocking(job) if getattr(job, "has_unfinished_dependencies", True) else []
    dead = (dep for dep in blocking if st.edge_fires(dep["on"], dep["status"]) is False)
    doomed = next(dead, None)
    if job.is_array_parent:
        if job.cancel_requested_at:
            return cancel_array(job)
        if doomed:
            if job.workflow_id is not None:
                _doom(job, doomed)
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
    """Ask every live child of an array to cancel; the parent ends when the last child does.

    Also for a parent that failed with more failed children than ``tolerated_failures``
    allow: it ended at once, its cancel request asks the rest to cancel.
    """
    now = timezone.now()
    live = parent.array_children.filter(status__in=st.LIVE)
    live.filter(cancel_requested_at__isnull=True).update(cancel_requested_at=now, updated_at=now)
    ids = live.filter(cancel_requested_at=now).values_list("pk", flat=True)
    dispatch.send_many_on_commit([("cancel", pk, 0) for pk in ids])
    return "cancelling-children"


def doomed(settled: Any) -> tuple[Any, ...]:
    """Pending jobs to settle, as three queries: each an indexed semi-join of few rows.

    Counting only what ended before ``settled``: jobs with a ``success`` edge from a job that
    ended other than completed (the query before edge conditions); jobs with an edge of
    another condition that can no longer fire (``dead_edges``, read through
    ``cjobdep_conditional_idx``: no row unless conditions are used); the children of a
    skipped array (cancelled by their own launches). One query with an OR of the three
    would read every pending job instead.
    """
    ended = JobDependency.objects.filter(depends_on__updated_at__lte=settled)
    plain = ended.filter(
        condition=st.SUCCESS, depends_on__status__in=sorted(st.TERMINAL - {st.COMPLETED})
    )
    conditional = ended.exclude(condition=st.SUCCESS).filter(dead_edges())
    skipped = ContainerJob.objects.filter(status=st.SKIPPED, updated_at__lte=settled)
    pending = ContainerJob.objects.filter(status=st.PENDING).order_by("created_at")
    return (
        pending.filter(pk__in=plain.values("job_id")),
        pending.filter(pk__in=conditional.values("job_id")),
        pending.filter(array_parent_id__in=skipped.values("pk")),
    )


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
            "max_parallel": job.max_parallel,
            "tolerated_failures": array_limits.shown(job.tolerated_failures),
        }
        if job.is_array_parent:
            array["counts"] = status_counts(job)
    return {
        "depends_on": [str(link.depends_on_id) for link in job.dependency_links.all()],
        "array": array,
    }


def _blocking(job: ContainerJob) -> list[dict[str, Any]]:
    """The edges of the job (and of its array parent) that have not fired: one SELECT."""
    owners = [pk for pk in (job.pk, job.array_parent_id) if pk is not None]
    edges = (
        JobDependency.objects.filter(job_id__in=owners)
        .exclude(fired_edges())
        .order_by("depends_on__completed_at")
        .values_list("depends_on_id", "depends_on__name", "depends_on__status", "condition")
    )
    keys = ("pk", "name", "status", "on")
    return [dict(zip(keys, edge, strict=True)) for edge in edges]


def _doom(job: ContainerJob, dependency: dict[str, Any]) -> str:
    """End ``job`` as its dead edge dooms it: ``skipped`` in a workflow, else ``cancelled``.

    A job whose cancel was asked for (a cancelled workflow) ends ``cancelled`` either way.
    """
    name = f" ({dependency['name']})" if dependency["name"] else ""
    edge = "" if dependency["on"] == st.SUCCESS else f"; the edge fires on {dependency['on']}"
    skips = job.workflow_id is not None and job.cancel_requested_at is None
    final = st.SKIPPED if skips else st.CANCELLED
    moved = move(
        job, st.PENDING, final, guard={"attempt_count": job.attempt_count},
        completed_at=timezone.now(),
        last_error=f"dependency {dependency['pk']}{name} ended {dependency['status']}{edge}",
    )  # fmt: skip
    return str(final) if moved else "taken"


def _start_children(parent: ContainerJob) -> None:
    """Send launch to as many ready pending children as the host has free slots; kicks do the rest.

    No more than ``max_parallel``: each child leaving its slot sends launch to the next.
    Also to each pending child already doomed by an edge of its own (``n_to_n`` to a child
    that ended before this array was submitted), which no kick would launch: one SELECT.
    """
    free = HostSlot.objects.free(parent.docker_host_id).count()
    if parent.max_parallel is not None:
        free = min(free, parent.max_parallel)
    children = parent.array_children.filter(status=st.PENDING).order_by("array_index")
    # A child with an edge of its own left to fire (``n_to_n``, ``sequential``) is launched
    # by that edge's release, not here: a launch now would only answer that it waits.
    own = JobDependency.objects.filter(job_id=OuterRef("pk")).exclude(fired_edges())
    ready = children.exclude(Exists(own))
    started = list(ready[:free].values_list("pk", flat=True))
    dead = JobDependency.objects.filter(dead_edges(), job__array_parent_id=parent.pk)
    doomed = children.filter(pk__in=dead.values("job_id")).exclude(pk__in=started)
    ids = [*started, *doomed.values_list("pk", flat=True)]
    dispatch.send_many_on_commit([("launch", pk, 0) for pk in ids])
