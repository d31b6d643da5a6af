"""The dispatch backend interface: ``send``, capability flags, ``check``, optional start and close.

Delays longer than a transport holds are dropped here, once: the sweep sends that work when due.
"""

from __future__ import annotations

import logging
from typing import Any


class DispatchBackend:
    """Carry ``(step, job_id, delay)`` messages to the step functions.

    A backend may deliver late, twice or never: the steps are idempotent and
    the sweep re-sends whatever is due. Transports implement ``deliver`` (and
    may implement ``deliver_many``); ``send`` drops what is beyond ``max_delay``.
    Bad options raise ``ImproperlyConfigured`` when the backend is built.
    """

    #: The longest delay the transport can hold, in seconds; None for no limit.
    max_delay: float | None = None

    def __init__(self, options: dict[str, Any]):
        self.options = dict(options)

    def send(self, step: str, job_id: str, delay: float) -> None:
        """Deliver one message, unless it is due later than the transport can hold."""
        if self._holds(step, job_id, delay):
            self.deliver(step, job_id, delay)

    def send_many(self, messages: list[tuple[str, str, float]]) -> None:
        """Deliver many ``(step, job_id, delay)`` messages; backends may do it concurrently."""
        held = [m for m in messages if self._holds(*m)]
        if held:
            self.deliver_many(held)

    def send_backstop(self, step: str, job_id: str, delay: float) -> None:
        """Send a delayed hint that matters only if the work it follows up on died.

        The launch's reconcile hint is one: most find the work done and do nothing.
        Transports send it like any message; one that runs steps in the sender's thread
        skips it, and ``wait_idle`` of one that has it does not wait for it.
        """
        self.send(step, job_id, delay)

    def deliver(self, step: str, job_id: str, delay: float) -> None:
        """Put one message on the transport."""
        raise NotImplementedError

    def deliver_many(self, messages: list[tuple[str, str, float]]) -> None:
        """Put many messages on the transport; one ``send`` each unless a transport batches."""
        for step, job_id, delay in messages:
            self.send(step, job_id, delay)

    def check(self) -> list[str]:
        """Problems with this backend's configuration, for ``manage.py check``; none here."""
        return []

    def close(self) -> None:
        """Release threads or clients; the default has none."""

    def _holds(self, step: str, job_id: str, delay: float) -> bool:
        if self.max_delay is None or delay <= self.max_delay:
            return True
        logging.getLogger(type(self).__module__).debug(
            "%s of job %s in %.0fs: longer than %s holds, left to the sweep",
            step, job_id, delay, type(self).__name__,
        )  # fmt: skip
        return False
