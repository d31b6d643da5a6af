"""Delete old finished jobs, remove containers no live job owns; ``--force`` ends stuck jobs.

Only containers carrying the ``container_manager.managed`` label are ever looked at or touched.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q
from django.utils import timezone

from container_manager import dispatch
from container_manager.executors.base import ContainerExecutor
from container_manager.executors.factory import ExecutorFactory
from container_manager.management._support import inline_dispatch
from container_manager.models import ContainerExecution, ContainerJob, ExecutorHost
from container_manager.rules import status as st

#: A running job is stuck once it outlives its timeout by this much (the check step missed it).
TIMEOUT_GRACE = timedelta(seconds=300)
#: A pending or launching job is stuck once it has not moved for this long.
UNMOVED_LIMIT = timedelta(days=1)
#: Docker states in which a container still runs.
RUNNING_STATES = frozenset({"running", "restarting", "paused"})


class Command(BaseCommand):
    """Clean up: old terminal jobs, orphaned containers and, with ``--force``, stuck jobs.

    A container is orphaned when its job does not exist, is terminal, or has
    moved on to another attempt. Stopped orphans are removed; running ones
    only with ``--force``. Removal goes through the executor's ``cleanup``,
    so a host with ``executor_config["remove_containers"] = False`` keeps
    stopped orphans (they are counted, not removed).
    """

    help = (
        "Delete terminal jobs older than --days (with their executions), remove orphaned "
        "managed containers on active Docker hosts, and with --force also kill running orphans "
        "and cancel live jobs stuck past their timeout. --dry-run changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """``--days``, ``--dry-run`` and ``--force``."""
        parser.add_argument(
            "--days",
            type=int,
            default=30,
            help="Delete terminal jobs finished (or, without a finish time, created) more than "
            "this many days ago (default 30).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Say what would be done; change nothing."
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Also kill and remove running orphaned containers, and cancel live jobs stuck "
            "past their timeout (+300s) or not moved for a day.",
        )

    def handle(self, *args: Any, days: int, dry_run: bool, force: bool, **options: Any) -> None:
        """Delete old jobs, cancel stuck jobs (``--force``), remove orphaned containers."""
        if days < 0:
            raise CommandError("--days must be zero or more")
        self.dry_run = dry_run
        self.verbose = dry_run or options["verbosity"] >= 2
        jobs, executions = self._delete_old_jobs(days)
        deleted = "would delete" if dry_run else "deleted"
        self.stdout.write(f"old jobs: {deleted} {jobs} ({executions} executions)")
        if force:
            self.stdout.write(self._cancel_stuck_jobs())
        report = self._remove_orphans(force)
        self.stdout.write(_orphan_summary(report, dry_run))
        if report["errors"]:
            raise CommandError(f"{report['errors']} host(s) or container(s) could not be handled")

    def _delete_old_jobs(self, days: int) -> tuple[int, int]:
        cutoff = timezone.now() - timedelta(days=days)
        old = ContainerJob.objects.terminal().filter(
            Q(completed_at__lt=cutoff) | Q(completed_at__isnull=True, created_at__lt=cutoff)
        )
        if self.dry_run:
            return old.count(), ContainerExecution.objects.filter(job__in=old).count()
        _, deleted = old.delete()
        return (
            deleted.get(ContainerJob._meta.label, 0),
            deleted.get(ContainerExecution._meta.label, 0),
        )

    def _cancel_stuck_jobs(self) -> str:
        stuck = list(_stuck_jobs())
        for job in stuck:
            self._note(f"stuck job {job.pk} ({job.name or job.docker_image}, {job.status})")
        if self.dry_run:
            return f"stuck jobs: would request cancel for {len(stuck)}"
        # The cancel steps run here, not on threads of a local backend that die with us.
        with inline_dispatch() as inline:
            for job in stuck:
                job.cancel()
                # An earlier request may never have been carried out: send the step anyway.
                dispatch.send("cancel", job.pk)
            outcomes = inline.run_due()
        detail = ", ".join(f"{k} {n}" for k, n in sorted(outcomes.get("cancel", {}).items()))
        return f"stuck jobs: cancel requested for {len(stuck)}" + (f" ({detail})" if detail else "")

    def _remove_orphans(self, force: bool) -> Counter[str]:
        report: Counter[str] = Counter()
        seen: set[str] = set()
        for host in ExecutorHost.objects.filter(is_active=True, executor_type="docker"):
            try:
                executor = ExecutorFactory().get_executor(host)
                # Two host rows may name the same engine: handle each container once.
                containers = [c for c in executor.list_managed_containers() if c["id"] not in seen]
            except Exception as exc:  # noqa: BLE001 - one unreachable host must not stop the rest
                self.stderr.write(f"host {host.name}: cannot list containers: {exc}")
                report["errors"] += 1
                continue
            seen.update(c["id"] for c in containers)
            for container, reason in _orphans(containers):
                report[self._handle_orphan(executor, container, reason, force)] += 1
        return report

    def _handle_orphan(
        self, executor: ContainerExecutor, container: dict[str, str], reason: str, force: bool
    ) -> str:
        where = f"container {container['name']} on {executor.host.name} ({reason})"
        running = container["status"] in RUNNING_STATES
        removes = getattr(executor, "remove_containers", True)
        if running and not force:
            self._note(f"keeping running {where}; --force removes it")
            return "kept_running"
        if not running and not removes:
            self._note(f"keeping stopped {where}: the host has remove_containers=False")
            return "kept_by_host"
        # On a host with remove_containers=False, cleanup() kills a running container only.
        outcome = "removed" if removes else "killed"
        self._note(f"{'would be ' if self.dry_run else ''}{outcome}: {where}")
        if self.dry_run:
            return outcome
        try:
            executor.cleanup(container["id"])
        except Exception as exc:  # noqa: BLE001 - reported and counted; the others go on
            self.stderr.write(f"{where}: {exc}")
            return "errors"
        return outcome

    def _note(self, text: str) -> None:
        if self.verbose:
            self.stdout.write(text)


def _stuck_jobs() -> Iterator[ContainerJob]:
    """Live jobs the steps have evidently stopped moving."""
    now = timezone.now()
    unmoved_since = now - UNMOVED_LIMIT
    yield from ContainerJob.objects.filter(
        # A pending job may wait for a run_after set in the future on purpose.
        Q(status=st.PENDING, updated_at__lt=unmoved_since)
        & (Q(run_after__isnull=True) | Q(run_after__lt=unmoved_since))
        | Q(status=st.LAUNCHING, updated_at__lt=unmoved_since)
    )
    # Few jobs run at once (host slots bound them), so the deadline is computed here.
    for job in ContainerJob.objects.filter(status=st.RUNNING, started_at__isnull=False):
        if job.started_at + timedelta(seconds=job.timeout_seconds) + TIMEOUT_GRACE < now:
            yield job


def _orphans(containers: list[dict[str, str]]) -> Iterator[tuple[dict[str, str], str]]:
    """The containers no live job's current attempt owns, each with the reason."""
    ids = {_job_id(c["job_id"]) for c in containers} - {None}
    jobs = {
        str(pk): (status, attempts)
        for pk, status, attempts in ContainerJob.objects.filter(pk__in=ids).values_list(
            "pk", "status", "attempt_count"
        )
    }
    for container in containers:
        job = jobs.get(_job_id(container["job_id"]) or "")
        if job is None:
            yield container, f"job {container['job_id'] or '?'} does not exist"
        elif job[0] in st.TERMINAL:
            yield container, f"job is {job[0]}"
        elif container["attempt"] != str(job[1]):
            yield container, f"attempt {container['attempt']} is not the current {job[1]}"


def _job_id(label: str) -> str | None:
    try:
        return str(uuid.UUID(label))
    except ValueError:
        return None


def _orphan_summary(report: Counter[str], dry_run: bool) -> str:
    removed = "would remove" if dry_run else "removed"
    parts = [f"orphaned containers: {removed} {report['removed']}"]
    if report["killed"]:
        parts.append(f"{'would kill' if dry_run else 'killed'} {report['killed']} (not removed)")
    if report["kept_running"]:
        parts.append(f"kept {report['kept_running']} running (--force removes them)")
    if report["kept_by_host"]:
        parts.append(f"kept {report['kept_by_host']} on hosts with remove_containers=False")
    if report["errors"]:
        parts.append(f"{report['errors']} error(s)")
    return ", ".join(parts)
