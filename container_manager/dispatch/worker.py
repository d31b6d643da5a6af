"""The default dispatch of an installed app: steps run only in ``process_container_jobs``.

Other processes (the web server, a shell, a script) send nothing; the worker's sweep finds their
jobs from the rows, so a process that submits a job and exits leaves nothing half-done.
"""

from __future__ import annotations

from container_manager.dispatch.local import LocalBackend


class WorkerBackend(LocalBackend):
    """``LocalBackend`` in the process that starts it; a no-op in every other process.

    ``manage.py process_container_jobs`` (and ``manage.py demo``) call ``start()``: from
    then on steps run on that process's threads, as with ``LocalBackend`` (same options).
    A process that never calls ``start()`` drops its sends: each send only says "look at
    job X now", and the row already says it. A new job is launched by the worker's next
    pickup (``engine.pickup``), within its ``--pickup-interval`` (0.5 s); its sweep finds
    whatever that misses.
    """

    def _send(
        self, step: str, job_id: str, delay: float, tries: int, backstop: bool = False
    ) -> None:
        """Queue the step if this process started the threads; otherwise leave it to the rows."""
        if self._threads:
            super()._send(step, job_id, delay, tries, backstop)
