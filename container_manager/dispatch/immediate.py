"""Dispatch that runs each step inline, in the sending thread: for tests and debugging.

Follow-up sends made by a step run after it, in order, so nothing recurses.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from container_manager.dispatch.base import DispatchBackend
from container_manager.engine import runner


class ImmediateBackend(DispatchBackend):
    """Run steps at once. Options: ``SLEEP`` (default True) waits out each delay first.

    With ``SLEEP`` False delays are skipped, so a job whose container is
    still running is checked again at once, in a loop, until it finishes.
    """

    def __init__(self, options):
        super().__init__(options)
        self.sleep = bool(self.options.get("SLEEP", True))
        self._local = threading.local()

    def send_backstop(self, step: str, job_id: str, delay: float) -> None:
        """Skipped: run inline, a hint due in ``delay`` would hold up the sender that long.

        Here the sender runs the step it follows up on to its end, so nothing can die
        in between that the hint would find; the sweep remains the backstop.
        """

    def send(self, step: str, job_id: str, delay: float) -> None:
        queue = getattr(self._local, "queue", None)
        if queue is not None:
            queue.append((step, job_id, delay))
            return
        self._local.queue = queue = deque([(step, job_id, delay)])
        try:
            while queue:
                step, job_id, delay = queue.popleft()
                if delay and self.sleep:
                    time.sleep(delay)
                # A failed step is logged by the runner; the row keeps the work for the sweep.
                runner.run(step, job_id)
        finally:
            self._local.queue = None
