"""A workflow as one object: named nodes, each a job (or an array), submitted in one transaction.

The nodes are ordinary ``ContainerJob`` rows (``workflow``, ``workflow_node``) linked by edges.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Count, Q
from django.utils import timezone

from container_manager import dispatch
from container_manager.conf import setting
from container_manager.models import idempotency, limits
from container_manager.models.hosts import ExecutorHost
from container_manager.models.jobs import ContainerJob
from container_manager.models.workflows import link_children, write_edges
from container_manager.rules import status as st
from container_manager.rules import workflow_spec
from container_manager.rules.idempotency import check_key
from container_manager.rules.workflow_spec import Node

#: The statuses a workflow can have; the job statuses of the same names mean the same.
STATUSES = tuple(str(s) for s in (st.PENDING, st.RUNNING, st.COMPLETED, st.FAILED, st.CANCELLED))
#: The prefix of the ``with_counts()`` annotations, one per job status.
_COUNT = "nodes_"


class WorkflowQuerySet(models.QuerySet):
    """Queries over workflows; ``with_counts()`` loads each one's node counts in the same query."""

    def with_counts(self) -> WorkflowQuerySet:
        """Each workflow with how many of its nodes are in each status (one GROUP BY)."""
        return self.annotate(
            **{
                _COUNT + str(status): Count("jobs", filter=Q(jobs__status=status))
                for status, _ in st.STATUS_CHOICES
            }
        )


class WorkflowManager(models.Manager.from_queryset(WorkflowQuerySet)):
    """``Workflow.objects``: the queries of Django, ``with_counts`` and ``submit``."""

    def submit(
        self,
        spec: Any,
        user: Any = None,
        *,
        limited: bool = False,
        idempotency_key: str | None = None,
    ) -> Workflow:
        """Check ``spec`` whole, then make the workflow and a job per node in one transaction.

        ``spec`` is ``{"name": ..., "nodes": {"<node>": {<submit fields>, "depends_on":
        ["<node>", ...]}, ...}}``: each node's fields are those of the JSON API's submit
        (``rules.contract``: ``docker_image``, ``host``, ``array_size`` …), its ``depends_on``
        names other nodes, each a name or ``{"node": "<node>", "on": "failure" | "always"}``
        (``"type": "n_to_n"`` between arrays: child ``i`` waits for child ``i``).
        ``user`` owns the workflow and its jobs (``created_by``; None:
        trusted code). With ``limited`` the quotas of ``models.limits`` apply to all its rows.
        With ``idempotency_key`` (as ``create_job``'s, ``models.idempotency``) a call repeating
        an earlier one of ``user``'s scope returns the workflow it made (``replayed`` True).

        Raises ``ValidationError`` naming ``name``, ``nodes`` (count, a node name, a cycle with
        its nodes) or ``nodes.<node>.<field>``; nothing is stored then. Statements: those of
        ``create_job`` per node (its INSERT, a host chosen when none is named), plus a
        constant few (the workflow, the named hosts, the edges).
        """
        if idempotency_key is not None:
            workflow, created = idempotency.once(
                idempotency.scope_of(user),
                check_key(idempotency_key),
                {"kind": "workflow", "spec": spec},
                lambda: self.submit(spec, user, limited=limited),
            )
            workflow.replayed = not created
            return workflow
        name, nodes = workflow_spec.check(spec, setting("WORKFLOW_MAX_NODES"))
        hosts = _hosts(nodes)
        if limited:
            active = ContainerJob.objects.filter(created_by=user).live()
            rows = sum(limits.rows_of(node.fields.get("array_size")) for node in nodes)
            limits.check_submission(active if user is not None else None, rows)
        with transaction.atomic(using=self.db):
            workflow = self.create(name=name, created_by=user, spec=workflow_spec.stored(spec))
            made = {node.name: _create_node(workflow, node, hosts, user) for node in nodes}
            _write_edges(nodes, made)
        return workflow


class Workflow(models.Model):
    """
    Named nodes submitted as one object; each node is a job, waiting for the nodes it names.

    Made by ``Workflow.objects.submit(spec)`` (or ``POST api/workflows/``). Its ``status``
    is computed from its nodes' jobs; ``cancel()`` cancels every node not finished. Who sees
    it follows the job rule of ``models.owners`` on ``created_by``.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        help_text="Who submitted the workflow; its jobs are theirs too.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    spec = models.JSONField(
        help_text="The document as submitted, environment values masked (the jobs hold them)."
    )
    cancel_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="When a cancel of the whole workflow was asked for."
    )

    objects = WorkflowManager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["created_by", "-created_at"], name="cwf_owner_list_idx")]

    def __str__(self) -> str:
        return self.name or str(self.pk)

    @property
    def status(self) -> str:
        """The nodes' statuses summed up; ``status_of`` states the rule."""
        return status_of(self.node_counts())

    def node_counts(self) -> dict[str, int]:
        """How many of its nodes are in each status: loaded by ``with_counts()``, else one query."""
        loaded = {
            str(status): getattr(self, _COUNT + str(status), None)
            for status, _ in st.STATUS_CHOICES
        }
        if None not in loaded.values():
            return loaded
        return dict(self.jobs.order_by().values_list("status").annotate(n=Count("pk")))

    def cancel(self) -> bool:
        """Ask every node not finished to cancel; True when one was still live.

        Each live node gets the job's cancel request (``cancel_requested_at`` set by one
        guarded UPDATE, then the ``cancel`` step, as ``ContainerJob.cancel``); a node already
        asked, or finished, is left alone, so a second call changes nothing.
        """
        now = timezone.now()
        live = self.jobs.filter(status__in=st.LIVE)
        with transaction.atomic():
            type(self).objects.filter(pk=self.pk, cancel_requested_at__isnull=True).update(
                cancel_requested_at=now
            )
            live.filter(cancel_requested_at__isnull=True).update(
                cancel_requested_at=now, updated_at=now
            )
            asked = live.filter(cancel_requested_at=now).values_list("pk", flat=True)
            dispatch.send_many_on_commit([("cancel", pk, 0) for pk in asked])
        self.refresh_from_db(fields=["cancel_requested_at"])
        return live.exists()


def status_of(counts: dict[str, int]) -> str:
    """A workflow's status from how many of its nodes are in each status.

    Every node pending: pending. Any node pending, launching or running: running. Every node
    completed or skipped: completed (a node skipped because its edges did not fire is not a
    failure). Else failed when a node failed or timed out (even if a ``failure`` handler ran),
    otherwise cancelled.

    >>> status_of({"pending": 3}), status_of({"completed": 1, "pending": 2})
    ('pending', 'running')
    >>> status_of({"completed": 3}), status_of({"completed": 1, "timeout": 1, "cancelled": 1})
    ('completed', 'failed')
    >>> status_of({"completed": 2, "cancelled": 1})
    'cancelled'
    >>> status_of({"completed": 2, "skipped": 1})
    'completed'
    >>> status_of({"failed": 1, "completed": 1, "skipped": 1})
    'failed'
    """
    counts = {str(status): n for status, n in counts.items() if n}
    total = sum(counts.values())
    if counts.get(st.PENDING, 0) == total:
        return str(st.PENDING)
    if any(status in st.LIVE for status in counts):
        return str(st.RUNNING)
    if counts.get(st.COMPLETED, 0) + counts.get(st.SKIPPED, 0) == total:
        return str(st.COMPLETED)
    return str(st.FAILED if counts.keys() & {st.FAILED, st.TIMEOUT} else st.CANCELLED)


def _hosts(nodes: list[Node]) -> dict[str, ExecutorHost]:
    """The executor hosts the nodes name, in one SELECT; a node naming none is an error on it."""
    wanted = {node.fields["host"] for node in nodes if node.fields.get("host") is not None}
    found = {host.name: host for host in ExecutorHost.objects.filter(name__in=wanted)}
    errors = {
        f"nodes.{node.name}.host": [
            f"nodes.{node.name}.host: no executor host named {node.fields['host'][:100]!r}."
        ]
        for node in nodes
        if node.fields.get("host") is not None and node.fields["host"] not in found
    }
    if errors:
        raise ValidationError(errors)
    return found


def _write_edges(nodes: list[Node], made: dict[str, uuid.UUID]) -> None:
    """The nodes' edges between their jobs: one INSERT for all, two statements per n_to_n edge."""
    edges = [(node, upstream, on) for node in nodes for upstream, on in node.edges()]
    write_edges([(made[n.name], made[d], on) for n, d, on in edges if d not in n.n_to_n])
    for node, upstream, on in edges:
        if upstream in node.n_to_n:
            link_children(made[node.name], made[upstream], on)


def _create_node(
    workflow: Workflow, node: Node, hosts: dict[str, ExecutorHost], user: Any
) -> uuid.UUID:
    """``create_job`` of one node (named after it unless it names itself); its job's id."""
    fields = dict(node.fields)
    host = fields.pop("host", None)
    try:
        job = ContainerJob.objects.create_job(
            image=fields.pop("docker_image"),
            name=fields.pop("name", None) or node.name,
            environment_vars=fields.pop("environment_vars", None) or {},
            docker_host=hosts[host] if host is not None else None,
            created_by=user,
            workflow=workflow,
            workflow_node=node.name,
            **fields,
        )
    except ValidationError as exc:
        raise ValidationError(workflow_spec.prefixed(exc, f"nodes.{node.name}")) from None
    return job.pk
