"""Retry: run a job that ended badly again, as new jobs, with the dependents its end cancelled;
resume a workflow: re-run its nodes that ended badly and the nodes after them.

A finished job never changes status, so its retry is a new job, linked both ways in
``executor_metadata``; the mark on the original is a compare-and-set, so a job is retried once.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connections, transaction
from django.db.models import Count, Q

from container_manager import dispatch
from container_manager.models import (
    ArrayCounts,
    ContainerJob,
    ExecutorHost,
    JobDependency,
    Workflow,
    WorkflowResume,
    limits,
)
from container_manager.models.labels import save_labels
from container_manager.models.workflows import copy_child_edges, insert_children, write_edges
from container_manager.rules import status as st

logger = logging.getLogger(__name__)

#: Statuses a job may be retried from (as a new job).
RETRYABLE = frozenset({st.FAILED, st.TIMEOUT, st.CANCELLED})
#: Statuses of a dependent that a dependency's end took down (without a request, before a start).
TAKEN_DOWN = frozenset({st.CANCELLED, st.SKIPPED})
#: Statuses of the dependents a retry brings back: taken down, or an ``n_to_n`` array that ended.
_BROUGHT = TAKEN_DOWN | RETRYABLE
#: The ``executor_metadata`` key of a retry naming its original, and of the original naming it.
RETRY_OF = "retry_of"
RETRIED_AS = "retried_as"
#: Besides the steps' fields (``SYSTEM_FIELDS``), what a retry sets itself instead of copying.
_NOT_COPIED = frozenset(
    {"id", "created_at", "updated_at", "created_by", "docker_host", "array_parent", "array_index"}
)
#: Relations ``full_clean`` would look up with a SELECT each; a retry copies existing rows' ids.
_RELATIONS = ["docker_host", "environment_template", "created_by", "array_parent"]


def retry_job(job: ContainerJob, user: Any = None, *, limited: bool = False) -> ContainerJob:
    """Submit ``job``'s request again as a new job, and bring back what its end cancelled.

    All in one transaction, or nothing:

    - ``job`` gets ``executor_metadata["retried_as"] = <new id>`` by a compare-and-set (still
      failed, timed out or cancelled; no retry named, or the one named was deleted), so of
      two concurrent retries of a job one makes jobs and the other is refused;
    - the new job has ``job``'s request and ``depends_on`` (a dependency not completed is waited
      for; one that ended badly cancels it again), ``executor_metadata["retry_of"]``,
      ``created_by`` = ``user``, and ``job``'s host while it is active (else one is chosen);
    - each job cancelled because of ``job``, down the chain (a pending job cancelled by a
      dependency that ended badly, or a workflow node skipped: no cancel request, never
      started, not retried yet) comes
      back the same way, with its own owner, as a new pending job that waits for the new jobs
      in place of those they retry and keeps its other dependencies; each is marked too;
    - an array parent comes back as a new parent of the same ``array_size`` whose children are
      only the indexes that did not complete (same ``array_index``, so ``CM_ARRAY_INDEX``); its
      counts start with the children that completed, so it ends, and releases its dependents,
      when the re-run children have ended. A child alone is refused: retry its array.
      A re-run child keeps its own edges (``n_to_n``, ``sequential``), each to the re-run of
      its dependency when that comes back in the same retry (``copy_child_edges``); an array
      whose child an ``n_to_n`` edge to ``job`` (or to one brought back) took down comes back.

    Statements: one SELECT per level of dependents plus a fixed number, however many jobs come
    back (one INSERT of the new jobs, one of their edges, two INSERT … SELECT per array, its
    children and their edges, and one UPDATE for all arrays; a labelled job adds its label
    rows, ``models.labels``).
    ``limited`` holds the new rows to ``user``'s quotas (``models.limits``), as the JSON API
    does for a user's token. Returns the new job; its ``brought_back`` lists the dependents'.

    Raises:
        ValidationError: on ``status`` (not failed, timed out or cancelled; already retried,
            naming the retry), ``workflow`` (a node of a workflow: ``retry_workflow`` re-runs
            it), ``array_parent`` (a child of an array) or ``docker_host`` (no active host for
            a job whose host is inactive); nothing is written.
    """
    if job.workflow_id is not None:
        raise ValidationError(
            {
                "workflow": f"workflow: job {job.pk} is node {job.workflow_node!r} of workflow "
                f"{job.workflow_id}; retry the workflow: it re-runs this node and the nodes after "
                "it that did not complete"
            }
        )
    if job.array_parent_id is not None:
        raise ValidationError(
            {
                "array_parent": f"array_parent: job {job.pk} is child {job.array_index} of array "
                f"{job.array_parent_id}; retry the array: it re-runs the children that did not "
                "complete"
            }
        )
    with transaction.atomic():
        new_id = uuid.uuid4()
        _claim(job, new_id)
        brought = _cancelled_because_of(job)
        ids = {job.pk: new_id, **{dependent.pk: uuid.uuid4() for dependent in brought}}
        _mark_brought(brought, ids)
        new_jobs = _submit_copies(
            [job, *brought], ids, user, limited=limited, creator=getattr(user, "pk", None)
        )
    logger.info(
        "job %s retried as job %s by user %s (%d cancelled dependents brought back)",
        job.pk, new_id, getattr(user, "pk", None), len(brought),
    )  # fmt: skip
    retry = new_jobs[0]
    retry.brought_back = new_jobs[1:]
    return retry


def retry_workflow(
    workflow: Workflow, user: Any = None, *, limited: bool = False
) -> WorkflowResume:
    """Resume ``workflow``: re-run its nodes that ended badly and the nodes they skipped.

    All in one transaction, or nothing. Under a lock on the workflow's row (PostgreSQL), one
    SELECT reads every node; from that one reading:

    - a node still ``pending``, ``launching`` or ``running`` refuses the resume (resume once
      every node has ended, or cancel the workflow first): a node that ends while the resume
      runs was read live, so it is never re-run behind its own back;
    - the nodes re-run are those that ended ``failed``, ``timeout`` or ``cancelled``, and,
      down the chain, each ``skipped`` node that waits for a node re-run. A completed node is
      kept with its job and results, even one downstream (a failure handler that ran), and so
      is a node skipped because its branch was not taken (its edge from a kept node);
    - each re-run node's old job leaves the workflow (``workflow`` NULL, ``retried_as`` naming
      the new one: one guarded UPDATE each, the compare-and-set that makes a resume happen
      once); its new job, made as ``retry_job`` makes one (same request, edges with their
      conditions, an array re-running only the children that did not complete, the owner of
      the old job), becomes the node of the same name;
    - a ``WorkflowResume`` row records ``user``, the time and each node with its old and new
      job; the workflow's ``cancel_requested_at`` is cleared.

    ``limited`` holds the new rows to ``user``'s quotas, as ``retry_job``. Returns the resume.

    Raises:
        ValidationError: on ``status`` (a live node, naming it; no node to re-run; resumed
            meanwhile) or ``docker_host`` (as ``retry_job``); nothing is written.
    """
    with transaction.atomic():
        if not Workflow.objects.select_for_update().filter(pk=workflow.pk).exists():
            raise ValidationError({"workflow": f"workflow: {workflow.pk} no longer exists"})
        nodes = list(
            ContainerJob.objects.filter(workflow=workflow)
            .select_related("docker_host")
            .order_by("created_at", "pk")
        )
        rerun = _nodes_to_rerun(workflow, nodes)
        ids = {old.pk: uuid.uuid4() for old in rerun}
        _detach(workflow, ids)
        creator = rerun[0].created_by_id
        made = _submit_copies(rerun, ids, user, limited=limited, creator=creator, workflow=workflow)
        resume = WorkflowResume.objects.create(
            workflow=workflow,
            user=user,
            count=len(made),
            nodes=[
                {"node": old.workflow_node, "job": str(old.pk), "retry": str(new.pk)}
                for old, new in zip(rerun, made, strict=True)
            ],
        )
        Workflow.objects.filter(pk=workflow.pk, cancel_requested_at__isnull=False).update(
            cancel_requested_at=None
        )
    workflow.refresh_from_db(fields=["cancel_requested_at"])
    logger.info(
        "workflow %s resumed by user %s: %d node(s) re-run (%s)",
        workflow.pk, getattr(user, "pk", None), len(made), ", ".join(resume.node_names),
    )  # fmt: skip
    return resume


def _nodes_to_rerun(workflow: Workflow, nodes: list[ContainerJob]) -> list[ContainerJob]:
    """The nodes a resume re-runs, read once; raise when a node is live or none is to re-run."""
    live = sorted(node.workflow_node for node in nodes if node.status in st.LIVE)
    if live:
        raise ValidationError(
            {
                "status": f"status: workflow {workflow.pk} has nodes not ended ("
                f"{', '.join(live)}); resume it once they have ended, or cancel it first"
            }
        )
    chosen = {node.pk for node in nodes if node.status in RETRYABLE}
    if not chosen:
        raise ValidationError(
            {
                "status": f"status: workflow {workflow.pk} has no node that failed, timed out "
                "or was cancelled: nothing to re-run"
            }
        )
    skipped = {node.pk for node in nodes if node.status == st.SKIPPED}
    edges = JobDependency.objects.filter(job_id__in=skipped).values_list("job_id", "depends_on")
    waits_for: dict[Any, set[Any]] = {}
    for waiting, dependency in edges:
        waits_for.setdefault(waiting, set()).add(dependency)
    grown = True
    while grown:
        more = {pk for pk in skipped - chosen if waits_for.get(pk, set()) & chosen}
        chosen |= more
        grown = bool(more)
    return [node for node in nodes if node.pk in chosen]


def _detach(workflow: Workflow, ids: dict[Any, uuid.UUID]) -> None:
    """Take the re-run nodes' old jobs out of ``workflow`` and mark them; raise if one moved."""
    ended = RETRYABLE | TAKEN_DOWN
    detached = ContainerJob.objects.filter(
        pk__in=list(ids), workflow=workflow, status__in=ended
    ).update(workflow=None)
    if detached != len(ids) or _mark(ids, ended) != len(ids):
        raise ValidationError(
            {
                "status": f"status: a node of workflow {workflow.pk} was resumed or retried "
                "meanwhile; read the workflow again"
            }
        )


def _submit_copies(
    originals: list[ContainerJob],
    ids: dict[Any, uuid.UUID],
    user: Any,
    *,
    limited: bool,
    creator: Any,
    workflow: Any = None,
) -> list[ContainerJob]:
    """Make the new jobs of ``originals`` (ids from ``ids``), their edges, children and labels.

    The first is made by ``creator``, the others keep their owners; with ``workflow`` each
    becomes the workflow's node of its original's name. Sends their launches on commit.
    """
    arrays = _completed_children(originals)
    if limited:
        _check_quotas(user, originals, arrays)
    new_jobs = _copies(originals, ids, creator)
    if workflow is not None:
        for old, new in zip(originals, new_jobs, strict=True):
            new.workflow_id, new.workflow_node = workflow.pk, old.workflow_node
    ContainerJob.objects.bulk_create(new_jobs)
    _copy_edges(ids)
    _rerun_arrays(arrays, {new.pk: new for new in new_jobs}, ids)
    copy_child_edges({old: ids[old] for old in arrays})
    for new in new_jobs:
        save_labels(new)
    dispatch.send_many_on_commit([("launch", new.pk, 0) for new in new_jobs])
    return new_jobs


def _claim(job: ContainerJob, new_id: uuid.UUID) -> None:
    """Mark ``job`` as retried as ``new_id``, or raise the ``ValidationError`` saying why not."""
    if _mark({job.pk: new_id}, RETRYABLE) == 1:
        return
    row = ContainerJob.objects.filter(pk=job.pk).values("status", "executor_metadata").first()
    if row is None:
        raise ValidationError({"status": f"status: job {job.pk} no longer exists"})
    if row["status"] not in RETRYABLE:
        raise ValidationError({"status": f"status: a {row['status']!r} job cannot be retried"})
    retry = (row["executor_metadata"] or {}).get(RETRIED_AS)
    gone = retry is not None and not ContainerJob.objects.filter(pk=retry).exists()
    if gone and _mark({job.pk: new_id}, RETRYABLE, stale=retry) == 1:
        return
    raise ValidationError({"status": f"status: job {job.pk} was already retried as job {retry}"})


def _mark_brought(brought: list[ContainerJob], ids: dict[Any, uuid.UUID]) -> None:
    """Mark the dependents brought back as retried; raise if one was retried meanwhile."""
    marked = _mark({dependent.pk: ids[dependent.pk] for dependent in brought}, _BROUGHT)
    if marked != len(brought):
        raise ValidationError({"status": "status: a dependent was retried meanwhile; retry again"})


def _copy_edges(ids: dict[Any, uuid.UUID]) -> None:
    """Give each new job its original's dependencies, the retried ones replaced by their retries."""
    edges = JobDependency.objects.filter(job_id__in=list(ids)).values_list(
        "job_id", "depends_on", "condition"
    )
    write_edges([(ids[waiting], ids.get(dep, dep), on) for waiting, dep, on in edges])


def _mark(
    retries: dict[Any, uuid.UUID], statuses: set[str] | frozenset[str], stale: str | None = None
) -> int:
    """Write ``retried_as`` into each job's metadata (one UPDATE); how many rows took it.

    Only rows in ``statuses`` that name no retry (or name ``stale``) are written: the
    compare-and-set that makes a job's retry happen once. Other metadata keys are kept.
    """
    if not retries:
        return 0
    connection = connections[ContainerJob.objects.db]
    quote = connection.ops.quote_name
    pk = ContainerJob._meta.pk
    table, key = quote(ContainerJob._meta.db_table), quote(pk.column)
    status, metadata = (
        quote(ContainerJob._meta.get_field(name).column) for name in ("status", "executor_metadata")
    )
    ids = [pk.get_db_prep_value(old, connection) for old in retries]
    case = " ".join(f"WHEN {key} = %s THEN CAST(%s AS text)" for _ in retries)
    case_params = [
        value for old, new in zip(ids, retries.values(), strict=True) for value in (old, str(new))
    ]
    if connection.vendor == "postgresql":
        written = f"COALESCE({metadata}, '{{}}'::jsonb) || jsonb_build_object('{RETRIED_AS}', "
        written += f"CASE {case} END)"
        named = f"({metadata} ->> '{RETRIED_AS}')"
    else:
        written = f"json_set(COALESCE({metadata}, '{{}}'), '$.{RETRIED_AS}', CASE {case} END)"
        named = f"json_extract({metadata}, '$.{RETRIED_AS}')"
    sql = (
        f"UPDATE {table} SET {metadata} = {written} "
        f"WHERE {key} IN ({', '.join(['%s'] * len(ids))}) "
        f"AND {status} IN ({', '.join(['%s'] * len(statuses))}) "
        f"AND ({named} IS NULL OR {named} = %s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*case_params, *ids, *(str(s) for s in statuses), stale])
        return cursor.rowcount


def _cancelled_because_of(job: ContainerJob) -> list[ContainerJob]:
    """The jobs cancelled or skipped because ``job`` ended badly, transitively: a SELECT a level.

    Besides the jobs that wait for one of a level, an array that ended (not completed) with a
    child taken down by an ``n_to_n`` edge to a child of an array of the level comes back
    (re-running its children that did not complete).
    Locked on PostgreSQL (``FOR UPDATE`` re-checks a row another retry marked meanwhile).
    """
    found: dict[Any, ContainerJob] = {}
    level = {job.pk}
    while level:
        waiting = JobDependency.objects.filter(depends_on_id__in=level).values("job_id")
        children = ContainerJob.objects.filter(
            dependency_links__depends_on__array_parent_id__in=level, status__in=TAKEN_DOWN,
            cancel_requested_at__isnull=True, started_at__isnull=True,
        ).values("array_parent_id")  # fmt: skip
        doomed = ContainerJob.objects.filter(
            Q(pk__in=waiting, status__in=TAKEN_DOWN, started_at__isnull=True)
            | Q(pk__in=children, status__in=RETRYABLE),
            cancel_requested_at__isnull=True,
            **{f"executor_metadata__{RETRIED_AS}__isnull": True},
        ).select_related("docker_host").select_for_update(of=("self",))  # fmt: skip
        fresh = [row for row in doomed if row.pk not in found and row.pk != job.pk]
        found.update((row.pk, row) for row in fresh)
        level = {row.pk for row in fresh}
    return list(found.values())


def _completed_children(originals: list[ContainerJob]) -> dict[Any, int]:
    """For each array parent among ``originals``, how many of its children completed."""
    parents = [old.pk for old in originals if old.is_array_parent]
    if not parents:
        return {}
    rows = (
        ContainerJob.objects.filter(array_parent_id__in=parents, status=st.COMPLETED)
        .order_by()
        .values_list("array_parent_id")
        .annotate(n=Count("pk"))
    )
    done = dict(rows)
    return {parent: done.get(parent, 0) for parent in parents}


def _check_quotas(user: Any, originals: list[ContainerJob], arrays: dict[Any, int]) -> None:
    """Refuse a retry whose new rows would go over ``user``'s quotas (``limits``)."""
    sizes = {old.pk: old.array_size for old in originals}
    rows = len(originals) + sum(sizes[parent] - done for parent, done in arrays.items())
    active = ContainerJob.objects.filter(created_by=user).live() if user is not None else None
    limits.check_submission(active, rows)


def _copies(
    originals: list[ContainerJob], ids: dict[Any, uuid.UUID], creator: Any
) -> list[ContainerJob]:
    """The new jobs, validated: ``originals``' requests, the first made by ``creator``."""
    chosen = None
    copies = []
    for old in originals:
        host = old.docker_host
        if not host.is_active:
            chosen = chosen or ExecutorHost.objects.choose()
            if chosen is None:
                raise ValidationError(
                    {"docker_host": "docker_host: no active executor host exists."}
                )
            host = chosen
        request = {
            field.attname: getattr(old, field.attname)
            for field in ContainerJob._meta.concrete_fields
            if field.name not in ContainerJob.SYSTEM_FIELDS | _NOT_COPIED
        }
        new = ContainerJob(
            id=ids[old.pk],
            docker_host=host,
            created_by_id=creator if old is originals[0] else old.created_by_id,
            executor_metadata={RETRY_OF: str(old.pk)},
            **request,
        )
        new.full_clean(exclude=_RELATIONS, validate_unique=False)
        copies.append(new)
    return copies


def _rerun_arrays(
    arrays: dict[Any, int], new_jobs: dict[uuid.UUID, ContainerJob], ids: dict[Any, uuid.UUID]
) -> None:
    """Give each new array parent the counts of the children that completed and the others anew."""
    if not arrays:
        return
    for old, done in arrays.items():
        if done >= new_jobs[ids[old]].array_size:
            raise ValidationError({"status": f"status: every child of array {old} completed"})
    ArrayCounts.objects.bulk_create(
        [ArrayCounts(parent_id=ids[old], completed=done) for old, done in arrays.items()]
    )
    for old in arrays:
        insert_children(new_jobs[ids[old]], rerun_of=old)
