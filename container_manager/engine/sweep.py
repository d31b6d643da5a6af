"""The sweep: find every job with work due from the rows alone and send its step again.

The safety net under lost messages; also fires due schedules and re-sends due webhook deliveries.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Case, Count, Exists, F, OuterRef, Q, Subquery, Value, When, Window
from django.db.models.functions import Coalesce, RowNumber

from container_manager import clock, dispatch
from container_manager.conf import setting
from container_manager.engine import delivery, firing, workflows
from container_manager.models import ArrayCounts, ContainerJob, HostSlot, idempotency, limits
from container_manager.models.manager import LAUNCH_ORDER
from container_manager.rules import status as st
from container_manager.telemetry import counters

#: Seconds the sweep leaves a due job alone, so it does not race the message already on its way.
SWEEP_GRACE_SECONDS = 2


def sweep(now: Any = None) -> dict[str, int]:
    """Find every job with work due, from the rows alone, and send its step again.

    Pending jobs that are due, whose dependency edges all fired and whose host has a
    free slot (a child of an array with ``max_parallel`` if its array has room too,
    ``_array_room``); pending jobs with an edge that can no longer fire, or whose array was
    skipped (their launch skips or cancels them; ``workflows.doomed``, three queries);
    launches not recorded ``LAUNCH_RECONCILE_SECONDS`` after they began (to
    reconcile or take over, see ``steps.launch``); running jobs whose check is
    due (timeouts included, as a check is always due by the deadline), and array parents
    whose children all ended while they are still live (``_ended_arrays``); cancel
    requests, and arrays that failed early with live children not yet asked to cancel
    (``_failed_early``); webhook deliveries whose attempt is due. Then it fires the
    schedules that are due (``firing.fire_due``) and deletes a batch of expired
    idempotency keys and of past request counts (one DELETE each, in one
    transaction). A fixed number of indexed queries, whatever the table size,
    plus the work of what is due.
    """
    now = now or clock.now()
    settled = now - timedelta(seconds=SWEEP_GRACE_SECONDS)
    batch = setting("SWEEP_BATCH_SIZE")
    jobs = ContainerJob.objects
    due = {
        "launch": (_launchable(settled, batch), _array_room(settled)),
        "settle": workflows.doomed(settled),
        # Most overdue first: when more is due than one batch, the oldest goes now.
        "relaunch": jobs.filter(
            status=st.LAUNCHING, lease_expires_at__lte=now + _reconcile_margin()
        ).order_by("lease_expires_at"),
        "check": (
            jobs.filter(status=st.RUNNING, next_check_at__lte=settled).order_by("next_check_at"),
            _ended_arrays(),
        ),
        "cancel": jobs.filter(
            Q(status__in=st.LIVE) | _failed_early(), cancel_requested_at__lte=settled
        ).order_by("cancel_requested_at"),
    }
    sent = {}
    messages = []
    for kind, queries in due.items():
        ids = _ids(queries if isinstance(queries, tuple) else (queries,), batch)
        step = "launch" if kind in ("relaunch", "settle") else kind
        messages.extend((step, job_id, 0) for job_id in ids)
        sent[kind] = len(ids)
    sent["notify"] = len(notifications := delivery.due(settled, batch))
    messages.extend(("notify", delivery_id, 0) for delivery_id in notifications)
    dispatch.send_many_on_commit(messages)
    sent["scheduled"] = firing.fire_due(now)
    with transaction.atomic():  # one transaction for both, not one per DELETE
        idempotency.forget_expired(now, batch)
        limits.forget_old_windows(now, batch)
    counters.sweep_found(sent)
    return sent


def catch_up(hosts: Any = None) -> list[tuple[str, str, float]]:
    """A ``harvest`` now for every running job (on ``hosts``, ids or a query of them, if given).

    For after a time in which the end of an execution could pass unseen: a worker that was
    down, an event stream that was closed. A harvest finishes a job whose execution ended
    and leaves one still running to its checks.
    """
    running = ContainerJob.objects.filter(status=st.RUNNING)
    if hosts is not None:
        running = running.filter(docker_host_id__in=hosts)
    return [("harvest", str(pk), 0.0) for pk in running.values_list("pk", flat=True)]


def resuming() -> list[tuple[str, str, float]]:
    """A ``resume`` now for every launching job: what a worker sends at its start."""
    launching = ContainerJob.objects.filter(status=st.LAUNCHING)
    return [("resume", str(pk), 0.0) for pk in launching.values_list("pk", flat=True)]


def _ids(queries: tuple[Any, ...], batch: int) -> list[Any]:
    """The ids of the jobs of ``queries``, each read once, at most ``batch``: one statement each."""
    ids = {pk: None for queryset in queries for pk in queryset.values_list("pk", flat=True)[:batch]}
    return list(ids)[:batch]


def _launchable(settled: Any, batch: int) -> Any:
    """Due pending jobs, at most as many per host as it has free slots, best first.

    The free slots are counted once per host (``HostSlot.objects.free_by_host``), not per
    job, and only up to ``batch``: no more launches than that are sent anyway.
    """
    free = HostSlot.objects.free_by_host(batch)
    room = Case(*(When(docker_host_id=host, then=Value(n)) for host, n in free.items()), default=0)
    place = Window(RowNumber(), partition_by=[F("docker_host_id")], order_by=LAUNCH_ORDER)
    # A job just submitted is its own launch's for the grace period, not the sweep's.
    fresh = Q(run_after__isnull=True, created_at__gt=settled)
    return (
        ContainerJob.objects.launchable(settled)
        .exclude(fresh)
        .filter(docker_host_id__in=list(free), max_parallel__isnull=True)
        .annotate(place=place, free=room)
        .filter(place__lte=F("free"))
    )


def _array_room(settled: Any) -> Any:
    """Due pending children of arrays with ``max_parallel``, as many per array as it has room.

    The first by index, up to ``max_parallel`` less the children launching or running: what a
    lost message from a child leaving its slot (``transitions._next_in_array``) would have
    started. Their launches check the host's slots and the array's room again.
    """
    busy = (
        ContainerJob.objects.filter(
            array_parent_id=OuterRef("array_parent_id"), status__in=sorted(st.HOLDS_SLOT)
        )
        .order_by()
        .values("array_parent_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    place = Window(RowNumber(), partition_by=[F("array_parent_id")], order_by="array_index")
    fresh = Q(run_after__isnull=True, created_at__gt=settled)
    return (
        ContainerJob.objects.launchable(settled)
        .exclude(fresh)
        .filter(max_parallel__isnull=False, array_parent__isnull=False)
        .annotate(place=place, busy=Coalesce(Subquery(busy), 0))
        .filter(place__lte=F("max_parallel") - F("busy"))
    )


def _failed_early() -> Q:
    """Array parents that failed beyond ``tolerated_failures`` with live children not asked to
    cancel: their ``cancel`` step (``transitions._fail_early``) was lost.

    An OR of the cancel requests' query, which reads the jobs with a cancel request
    (``cjob_cancel_requested_idx``): one probe of ``cjob_array_parent_status_idx`` per
    failed array among them, no statement of its own.
    """
    unasked = ContainerJob.objects.filter(
        array_parent_id=OuterRef("pk"), status__in=sorted(st.LIVE), cancel_requested_at=None
    )
    return Q(Exists(unasked), status=st.FAILED, array_parent__isnull=True, array_size__isnull=False)


def _reconcile_margin() -> timedelta:
    """How long before its lease expires a launch is due for reconciling."""
    lease, reconcile = setting("LAUNCH_LEASE_SECONDS"), setting("LAUNCH_RECONCILE_SECONDS")
    return timedelta(seconds=max(0.0, float(lease) - float(reconcile)))


def _ended_arrays() -> Any:
    """Live array parents whose counts say every child ended: their check ends them.

    The child whose final move completes the counts ends its parent right after that move
    (``transitions._end_array``); a worker that died in between leaves the parent live.
    Read through the partial index of live array parents (``cjob_array_status_idx``), one
    probe of the counts row each.
    """
    ended = F("completed") + F("failed") + F("timeout") + F("cancelled")
    complete = (
        ArrayCounts.objects.filter(pk=OuterRef("pk"))
        .alias(ended=ended)
        .filter(ended__gte=OuterRef("array_size"))
    )
    return ContainerJob.objects.filter(
        Exists(complete),
        status__in=sorted(st.LIVE),
        array_size__isnull=False,
        array_parent__isnull=True,
    )
