"""A dispatch backend for tests: it records every message and delivers none."""

from container_manager.dispatch.base import DispatchBackend


class RecordingBackend(DispatchBackend):
    """Keep ``(step, job_id, delay)`` tuples in ``messages``; the test decides what arrives.

    Backstop hints (``send_backstop``) are kept apart, in ``backstops``.
    """

    def __init__(self, options):
        super().__init__(options)
        self.messages = []
        self.backstops = []

    def send(self, step, job_id, delay):
        self.messages.append((step, job_id, delay))

    def send_backstop(self, step, job_id, delay):
        self.backstops.append((step, job_id, delay))

    def take(self):
        """Return and forget the messages recorded so far."""
        taken, self.messages = self.messages, []
        return taken


class FailingBackend(DispatchBackend):
    """Every delivery raises, as a transport that is down would."""

    def deliver(self, step, job_id, delay):
        raise ConnectionError(f"transport down: {step} of {job_id} not sent")
