"""Run the job steps where no serverless queue does: a long-lived loop, or one pass for cron.

The loop resumes the jobs in progress, then runs the local dispatch backend and sweeps; with the
worker dispatch it also picks up new jobs between sweeps (``engine.pickup``). ``--once`` runs one
sweep's steps inline.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from container_manager import clock, dispatch
from container_manager.dispatch.local import LocalBackend
from container_manager.dispatch.worker import WorkerBackend
from container_manager.engine import sweep
from container_manager.engine.pickup import Pickup
from container_manager.events.docker import followed_hosts
from container_manager.management._support import inline_dispatch, local_backend
from container_manager.models import ExecutorHost

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Command(BaseCommand):
    """Process container jobs until stopped, or once with ``--once``.

    At its start the loop looks at once at every job in progress (``resume``): the timers
    of a worker that stopped went with it. The loop stops after its current sweep on
    SIGINT or SIGTERM, or when ``stop()`` is called from another thread (which is how
    tests stop it); then the local backend lets running steps end and drops queued ones:
    the rows keep that work and the next sweep sends it again.
    """

    help = (
        "Run container jobs on this machine: start the local dispatch backend and sweep every "
        "--poll-interval seconds until SIGINT/SIGTERM. With --once, run one sweep's due steps "
        "in this process and exit (for cron). Serverless deployments do not need this command."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stopping = threading.Event()

    def add_arguments(self, parser: CommandParser) -> None:
        """``--once``, ``--poll-interval`` and ``--pickup-interval``."""
        parser.add_argument(
            "--once",
            action="store_true",
            help="Run the steps one sweep finds due, in this process, then exit. Work due later "
            "(the next check of a running job, a retry) is left for the next run.",
        )
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=5.0,
            help="Seconds between sweeps while running continuously (default 5).",
        )
        parser.add_argument(
            "--pickup-interval",
            type=float,
            default=0.5,
            help="With the worker dispatch, seconds between looks for new pending jobs that "
            "no process announced (default 0.5; one indexed SELECT each).",
        )

    def handle(
        self, *args: Any, once: bool, poll_interval: float, pickup_interval: float, **options: Any
    ) -> None:
        """Run once or continuously."""
        verbosity = options["verbosity"]
        if once:
            self.run_once(verbosity)
            return
        if poll_interval <= 0 or pickup_interval <= 0:
            raise CommandError("--poll-interval and --pickup-interval must be positive")
        self.run_continuously(poll_interval, verbosity, pickup_interval)

    def stop(self, *_: Any) -> None:
        """End the loop after the current sweep; the SIGINT/SIGTERM handler."""
        self.stopping.set()

    def run_once(self, verbosity: int) -> None:
        """Sweep, run every step found due (and the due steps those send), report per kind."""
        with inline_dispatch() as inline:
            found = sweep.sweep()
            outcomes = inline.run_due()
        if verbosity >= 1:
            for line in _summary(found, outcomes):
                self.stdout.write(line)
        if verbosity >= 2 and inline.deferred:
            self.stdout.write(
                f"{inline.deferred} follow-up step(s) are due later; their jobs' rows record "
                "when, and a later run picks them up"
            )
        errors = sum(counter["error"] for counter in outcomes.values())
        if errors:
            raise CommandError(f"{errors} step(s) raised an error; see the log")

    def run_continuously(
        self, poll_interval: float, verbosity: int, pickup_interval: float = 0.5
    ) -> None:
        """Start the local backend and sweep every ``poll_interval`` seconds until stopped.

        With the worker dispatch, in between, every ``pickup_interval`` seconds, new pending
        jobs that no process announced get their launch (``engine.pickup``).
        """
        backend = local_backend(
            "process_container_jobs runs jobs on local threads; serverless deployments "
            "do not need it (their queue runs the steps and their scheduler the sweep)"
        )
        previous = self._trap_signals()
        pickup = Pickup(clock.now()) if isinstance(backend, WorkerBackend) else None
        try:
            backend.start()
            self.resume(backend)
            if verbosity >= 1:
                self.stdout.write(
                    f"processing jobs with {backend.workers} worker threads, sweeping every "
                    f"{poll_interval:g}s; stop with Ctrl-C or SIGTERM"
                )
            next_sweep = 0.0
            while not self.stopping.is_set():
                if time.monotonic() >= next_sweep:
                    self._sweep(verbosity)
                    next_sweep = time.monotonic() + poll_interval
                if pickup is not None:
                    self._pick_up(backend, pickup)
                self.stopping.wait(min(poll_interval, pickup_interval) if pickup else poll_interval)
        finally:
            # A second Ctrl-C during the close below then interrupts it as usual.
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            dispatch.reset_backend()
        if verbosity >= 1:
            self.stdout.write("stopped; work still due is kept in the rows for the next run")

    def resume(self, backend: LocalBackend) -> None:
        """Look at once at the jobs in progress, which a stopped worker's timers were to look at.

        Every running job is harvested (``sweep.catch_up``), so one whose execution ended
        meanwhile finishes now, not at its next check; the jobs of the Docker hosts whose
        events the backend follows are left to their follower, which does the same when it
        connects. Every launching job is resumed (``sweep.resuming``): its launcher may
        have been this worker's.
        """
        close_old_connections()
        try:
            hosts = ExecutorHost.objects.all()
            if backend.docker_events:
                hosts = hosts.exclude(pk__in=followed_hosts())
            backend.send_many(sweep.catch_up(hosts.values("pk")) + sweep.resuming())
        except Exception:  # noqa: BLE001 - e.g. the database is away: the sweeps find the work
            logger.exception("resuming the jobs in progress failed")

    def _trap_signals(self) -> dict[int, Any]:
        # Python only lets the main thread install handlers; elsewhere stop() is the way.
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {signum: signal.signal(signum, self.stop) for signum in STOP_SIGNALS}

    def _pick_up(self, backend: LocalBackend, pickup: Pickup) -> None:
        close_old_connections()
        try:
            backend.send_many(pickup.due())
        except Exception:  # noqa: BLE001 - e.g. the database is away: the next look tries again
            logger.exception("looking for new jobs failed")

    def _sweep(self, verbosity: int) -> None:
        close_old_connections()
        try:
            found = sweep.sweep()
        except Exception:  # noqa: BLE001 - e.g. the database is away: the next poll tries again
            logger.exception("sweep failed")
            return
        if verbosity >= 2:
            self.stdout.write("sweep: " + ", ".join(f"{k} {n}" for k, n in found.items()))


def _summary(found: dict[str, int], outcomes: dict[str, Counter[str]]) -> list[str]:
    """One line per kind of step: how many the sweep found due, how many ran, their outcomes."""
    due = {
        "launch": found["launch"] + found["relaunch"],
        "check": found["check"],
        "cancel": found["cancel"],
    }
    lines = []
    for kind in [*due, *sorted(set(outcomes) - set(due))]:
        ran = outcomes.get(kind, Counter())
        detail = ", ".join(f"{outcome} {n}" for outcome, n in sorted(ran.items()))
        line = f"{kind}: {due.get(kind, 0)} due, {sum(ran.values())} run"
        lines.append(f"{line} ({detail})" if detail else line)
    return lines
