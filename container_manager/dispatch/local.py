"""The embedded default dispatch: worker threads, a timer heap for delayed sends, a sweep timer.

For runserver, the demo and single-machine deployments; nothing outside the process is needed.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from typing import Any

from django.db import close_old_connections, connections

from container_manager.dispatch.base import DispatchBackend

logger = logging.getLogger(__name__)

_STOP = object()


class LocalBackend(DispatchBackend):
    """Run steps on in-process worker threads, started at the first send.

    Options:
        ``WORKERS`` (4): threads running steps.
        ``SWEEP_INTERVAL`` (30): seconds between sweeps; 0 turns the sweep timer off.
        ``RETRIES`` (3): times a step that raised is sent again, one second later.
        ``DOCKER_EVENTS`` (True): follow the Docker hosts' event streams, so a container's
            end is harvested at once (``container_manager.events.docker``).
    """

    def __init__(self, options: dict[str, Any]):
        super().__init__(options)
        self.workers = int(self.options.get("WORKERS", 4))
        self.sweep_interval = float(self.options.get("SWEEP_INTERVAL", 30))
        self.retries = int(self.options.get("RETRIES", 3))
        self.docker_events = bool(self.options.get("DOCKER_EVENTS", True))
        self._watcher: Any = None
        self._ready: queue.Queue = queue.Queue()
        self._timers: list[tuple[float, int, str, str, int, bool]] = []
        self._backstops = 0  # timers that are backstop hints, which wait_idle does not wait for
        self._order = itertools.count()
        self._cond = threading.Condition()
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
        """``WORKERS`` must be at least 1, ``SWEEP_INTERVAL`` and ``RETRIES`` not negative."""
        problems = []
        if self.workers < 1:
            problems.append(f"OPTIONS['WORKERS'] must be at least 1, got {self.workers}")
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
                threading.Thread(target=self._work, name=f"cm-dispatch-{n}", daemon=True)
                for n in range(self.workers)
            ]
            self._threads.append(threading.Thread(target=self._tick, name="cm-timer", daemon=True))
        for thread in self._threads:
            thread.start()
        if self.docker_events:
            from container_manager.events.docker import DockerEventWatcher

            self._watcher = DockerEventWatcher(self)
            self._watcher.start()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no step is queued, running or scheduled; False if ``timeout`` passed first.

        Backstop hints (``send_backstop``) still on the timer heap do not count.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._busy or len(self._timers) > self._backstops or not self._ready.empty():
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
            self._cond.notify_all()
        if self._watcher is not None:
            self._watcher.close()
        for _ in range(self.workers):
            self._ready.put(_STOP)
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
        self._ready.put((step, job_id, tries))

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
                waits = [self._timers[0][0] - now] if self._timers else []
                if self.sweep_interval > 0:
                    waits.append(self._next_sweep - now)
                if not due and not sweep_due:
                    self._cond.wait(min(waits + [1.0]))
                    continue
            for _, _, step, job_id, tries, _ in due:
                self._ready.put((step, job_id, tries))
            if sweep_due:
                self._ready.put(("sweep", "", 0))

    def _work(self) -> None:
        from container_manager import runner

        try:
            while True:
                item = self._ready.get()
                if item is _STOP:
                    return
                step, job_id, tries = item
                try:
                    if self._closing:
                        continue  # dropped: the rows keep the work, the next sweep resends it
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
