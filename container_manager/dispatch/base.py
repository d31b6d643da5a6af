"""The dispatch backend interface: one ``send``, capability flags, optional start and close."""

from __future__ import annotations

from typing import Any


class DispatchBackend:
    """Carry ``(step, job_id, delay)`` messages to the step functions.

    A backend may deliver late, twice or never: the steps are idempotent and
    the sweep re-sends whatever is due.
    """

    #: Delayed sends are honoured (otherwise a delayed step waits for the sweep).
    supports_delay: bool = True
    #: The longest delay the transport can hold, in seconds; None for no limit.
    max_delay: float | None = None

    def __init__(self, options: dict[str, Any]):
        self.options = dict(options)

    def send(self, step: str, job_id: str, delay: float) -> None:
        """Deliver one message."""
        raise NotImplementedError

    def send_many(self, messages: list[tuple[str, str, float]]) -> None:
        """Deliver many ``(step, job_id, delay)`` messages; backends may do it concurrently."""
        for step, job_id, delay in messages:
            self.send(step, job_id, delay)

    def close(self) -> None:
        """Release threads or clients; the default has none."""
