"""The embedded default dispatch: worker threads, a timer heap for delayed sends, a sweep timer.

New jobs' launches and the sweep may take long (the engine creating and starting a
container, a scan), so every other step goes before them (a check, a harvest,
the ``start`` of a job handed a freed slot, the ``resume`` of a launch a stopped worker
left), and ``STEP_WORKERS`` threads run only those:
a timeout's stop or a container's harvest never waits behind a burst of launches.

For runserver, the demo and single-machine deployments; nothing outside the process is needed.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from typing import Any

from django.db import close_old_connections, connections

from container_manager.dispatch.base import DispatchBackend
from container_manager.engine import runner
from container_manager.events.docker import DockerEventWatcher

logger = logging.getLogger(__name__)

#: The steps that go last and that ``STEP_WORKERS`` threads leave to the others: new jobs'
#: launches (a hand-over sends ``start``) and the sweep.
SLOW_STEPS = frozenset({"launch", "sweep"})


class LocalBackend(DispatchBackend):
    """Run steps on in-process worker threads, started at the first send.

    Options:
        ``WORKERS`` (4): threads running steps, every other step before launches and the sweep.
        ``STEP_WORKERS`` (1): more threads that run only the steps that go first.
        ``SWEEP_INTERVAL`` (30): seconds between sweeps; 0 turns the sweep timer off.
        ``RETRIES`` (3): times a step that raised is sent again, one second later.
        ``DOCKER_EVENTS`` (True): follow the Docker hosts' event streams, so a container's
            end is harvested at once (``container_manager.events.docker``).
    """

    def __init__(self, options: dict[str, Any]):
        super().__init__(options)
        self.workers = int(self.options.get("WORKERS", 4))
        self.step_workers = int(self.options.get("STEP_WORKERS", 1))
        self.sweep_interval = float(self.options.get("SWEEP_INTERVAL", 30))
        self.retries = int(self.options.get("RETRIES", 3))
        self.docker_events = bool(self.options.get("DOCKER_EVENTS", True))
        self._watcher: Any = None
        self._steps: deque[tuple[str, str, int]] = deque()  # queued, to run first
        self._slow: deque[tuple[str, str, int]] = deque()  # queued launches and sweeps
        self._timers: list[tuple[float, int, str, str, int, bool]] = []
        self._backstops = 0  # timers that are backstop hints, which wait_idle does not wait for
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # timers, the idle count
        # A queued step wakes one thread that may run it, not all of them.
        self._any_ready = threading.Condition(self._lock)  # for the WORKERS threads
        self._step_ready = threading.Condition(self._lock)  # for the STEP_WORKERS threads
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._closing = False
        self._next_sweep = 0.0

    def send(self, step: str, job_id: str, delay: float) -> None:
        self._send(step, job_id, delay, tries=0)

    def send_backstop(self, step: str, job_id: str, delay: float) -> None:
        """Put the hint on the timer heap, where ``wait_idle`` does not wait for it."""
        self._send(step, job_id, delay, tries=0, backstop=True)

    def check(self) -> list[str]:
        """``WORKERS`` at least 1; ``STEP_WORKERS``, ``SWEEP_INTERVAL``, ``RETRIES`` 0 or more."""
        problems = []
        if self.workers < 1:
            problems.append(f"OPTIONS['WORKERS'] must be at least 1, got {self.workers}")
        if self.step_workers < 0:
            problems.append(f"OPTIONS['STEP_WORKERS'] must be 0 or more, got {self.step_workers}")
        if self.sweep_interval < 0:
            problems.append(
                f"OPTIONS['SWEEP_INTERVAL'] must be 0 or more, got {self.sweep_interval}"
            )
        if self.retries < 0:
            problems.append(f"OPTIONS['RETRIES'] must be 0 or more, got {self.retries}")
        return problems

    def start(self) -> None:
        """Start the threads now (the first send does it otherwise)."""
        with self._cond:
            if self._threads or self._closing:
                return
            self._next_sweep = time.monotonic() + self.sweep_interval
            self._threads = [
                threading.Thread(
                    target=self._work, args=(True,), name=f"cm-dispatch-{n}", daemon=True
                )
                for n in range(self.workers)
            ] + [
                threading.Thread(target=self._work, args=(False,), name=f"cm-step-{n}", daemon=True)
                for n in range(self.step_workers)
            ]
            self._threads.append(threading.Thread(target=self._tick, name="cm-timer", daemon=True))
        for thread in self._threads:
            thread.start()
        if self.docker_events:
            self._watcher = DockerEventWatcher(self)
            self._watcher.start()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no step is queued, running or scheduled; False if ``timeout`` passed first.

        Backstop hints (``send_backstop``) still on the timer heap do not count.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._busy or len(self._timers) > self._backstops:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(0.05 if remaining is None else min(remaining, 0.05))
        return True

    def close(self) -> None:
        """Let running steps end, drop queued and delayed ones (the rows keep that work)."""
        with self._cond:
            self._closing = True
            self._timers.clear()
            self._backstops = 0
            self._busy -= len(self._steps) + len(self._slow)
            self._steps.clear()
            self._slow.clear()
            for condition in (self._cond, self._any_ready, self._step_ready):
                condition.notify_all()
        if self._watcher is not None:
            self._watcher.close()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []

    # -- threads --------------------------------------------------------------

    def _send(
        self, step: str, job_id: str, delay: float, tries: int, backstop: bool = False
    ) -> None:
        self.start()
        with self._cond:
            if self._closing:
                return
            if delay > 0:
                item = (time.monotonic() + delay, next(self._order), step, job_id, tries, backstop)
                heapq.heappush(self._timers, item)
                self._backstops += backstop
                self._cond.notify_all()
                return
            self._busy += 1  # counted from queueing, so wait_idle never sees a gap
            self._queue(step, job_id, tries)

    def _queue(self, step: str, job_id: str, tries: int) -> None:
        """Queue a step (the lock held, ``_busy`` already counting it) and wake a worker."""
        if step in SLOW_STEPS:
            self._slow.append((step, job_id, tries))
        else:
            self._steps.append((step, job_id, tries))
            self._step_ready.notify()
        self._any_ready.notify()

    def _take(self, any_step: bool) -> tuple[str, str, int] | None:
        """The next step for a worker (one of ``WORKERS`` if ``any_step``); None once closing."""
        with self._lock:
            while not self._closing:
                if self._steps:
                    return self._steps.popleft()
                if any_step and self._slow:
                    return self._slow.popleft()
                (self._any_ready if any_step else self._step_ready).wait()
        return None

    def _tick(self) -> None:
        while True:
            with self._cond:
                if self._closing:
                    return
                now = time.monotonic()
                due = []
                while self._timers and self._timers[0][0] <= now:
                    due.append(heapq.heappop(self._timers))
                    self._backstops -= due[-1][5]
                sweep_due = self.sweep_interval > 0 and now >= self._next_sweep
                if sweep_due:
                    self._next_sweep = now + self.sweep_interval
                self._busy += len(due) + sweep_due
                for _, _, step, job_id, tries, _ in due:
                    self._queue(step, job_id, tries)
                if sweep_due:
                    self._queue("sweep", "", 0)
                if not due and not sweep_due:
                    waits = [self._timers[0][0] - now] if self._timers else []
                    if self.sweep_interval > 0:
                        waits.append(self._next_sweep - now)
                    self._cond.wait(min(waits + [1.0]))

    def _work(self, any_step: bool) -> None:
        try:
            while (item := self._take(any_step)) is not None:
                step, job_id, tries = item
                try:
                    close_old_connections()
                    outcome = runner.run(step, job_id)
                    if not outcome.done and tries < self.retries and step != "sweep":
                        self._send(step, job_id, 1.0, tries + 1)
                finally:
                    with self._cond:
                        self._busy -= 1
                        self._cond.notify_all()
        finally:
            connections.close_all()
