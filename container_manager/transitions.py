"""Compare-and-set status moves: the only code that writes a job's ``status``.

One row changed means this caller owns the move; zero means someone else made it.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F
from django.db.models.signals import post_save

from container_manager import clock, hooks, signals
from container_manager import status as st
from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost


class HostFull(Exception):
    """The host had no free slot (or is inactive); the job stays pending."""


def move(
    job: ContainerJob,
    old: str,
    new: str,
    *,
    guard: dict[str, Any] | None = None,
    execution: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Move ``job`` from ``old`` to ``new`` if its row is still ``old``; return True if moved.

    ``guard`` adds conditions (e.g. the attempt number), ``fields`` are written
    with the status, ``execution`` updates the current attempt's
    ``ContainerExecution`` in the same transaction. Leaving launching/running
    frees the host slot in that transaction too, so counts never drift; an array's
    counts and a job's dependents follow the move there too (the ``job_moved`` hook,
    bound by ``container_manager.workflows``).
    """
    st.check_move(old, new, array_parent=job.is_array_parent)
    now = clock.now()
    with transaction.atomic():
        changed = ContainerJob.objects.filter(pk=job.pk, status=old, **(guard or {})).update(
            status=new, updated_at=now, **fields
        )
        if changed != 1:
            return False
        if old in st.HOLDS_SLOT and new not in st.HOLDS_SLOT and not job.is_array_parent:
            release_slot(job.docker_host_id)
        if execution is not None:
            ContainerExecution.objects.filter(job_id=job.pk, attempt=job.attempt_count).update(
                **execution
            )
        hooks.call("job_moved", job, new)
    job.status = new
    job._loaded_status = new
    for name, value in fields.items():
        setattr(job, name, value)
    _announce(job, {"status", *fields})
    return True


def begin_launch(job: ContainerJob, lease_expires_at: Any) -> bool:
    """Move pending -> launching as a new attempt, taking a slot on the job's host.

    Returns False when another caller already moved the job. Raises
    ``HostFull`` when the host is full or inactive (nothing is changed).
    Creates the attempt's ``ContainerExecution`` (or resets the one of an attempt that
    met an unreachable host and is tried again under its number).
    """
    attempt = job.attempt_count + 1
    now = clock.now()
    with transaction.atomic():
        changed = ContainerJob.objects.filter(
            pk=job.pk, status=st.PENDING, attempt_count=job.attempt_count
        ).update(
            status=st.LAUNCHING,
            attempt_count=attempt,
            lease_expires_at=lease_expires_at,
            execution_id="",
            updated_at=now,
        )
        if changed != 1:
            return False
        reserved = ExecutorHost.objects.filter(
            pk=job.docker_host_id,
            is_active=True,
            current_job_count__lt=F("max_concurrent_jobs"),
        ).update(current_job_count=F("current_job_count") + 1)
        if reserved != 1:
            # Raising inside the atomic block undoes the job's move: it stays pending.
            raise HostFull(job.docker_host_id)
        # An attempt that met an unreachable host is tried again under the same number.
        ContainerExecution.objects.update_or_create(
            job_id=job.pk,
            attempt=attempt,
            defaults={
                "host_id": job.docker_host_id, "started_at": now, "status": st.LAUNCHING,
                "execution_id": "", "error": "", "finished_at": None,
            },
        )  # fmt: skip
    job.status = job._loaded_status = st.LAUNCHING
    job.attempt_count = attempt
    job.lease_expires_at = lease_expires_at
    job.execution_id = ""
    _announce(job, {"status", "attempt_count", "lease_expires_at", "execution_id"})
    return True


def _announce(job: ContainerJob, changed: set[str]) -> None:
    """Send ``post_save`` with the written fields once the move is committed.

    Receivers written for Django's signals (``"status" in update_fields``)
    see every status change, though moves are updates, not ``save()`` calls.
    """
    update_fields = frozenset(changed)
    transaction.on_commit(
        lambda: post_save.send(
            sender=ContainerJob,
            instance=job,
            created=False,
            update_fields=update_fields,
            raw=False,
            using=ContainerJob.objects.db,
        )
    )
    signals.announce_move(job, job.status)


def release_slot(host_id: int) -> None:
    """Give back one slot on a host (never below zero)."""
    ExecutorHost.objects.filter(pk=host_id, current_job_count__gt=0).update(
        current_job_count=F("current_job_count") - 1
    )
