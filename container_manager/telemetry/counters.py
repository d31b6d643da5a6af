"""In-process counts: step durations and outcomes, sweep findings, failed sends.

Plain thread-safe tallies, so counting costs no import at cold start; ``metrics`` turns them
into Prometheus families when ``cm/metrics/`` is scraped. They cover this process only.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from typing import Any

#: Step durations, from sub-second checks to launches that wait on a slow platform API.
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Tally:
    """Sums per label tuple, safe across threads.

    >>> tally = Tally()
    >>> tally.add(("launch", "launched")); tally.add(("launch", "launched"), 2)
    >>> tally.snapshot()
    {('launch', 'launched'): 3.0}
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, ...], float] = {}

    def add(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        """Add ``amount`` to the sum of ``labels``."""
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def snapshot(self) -> dict[tuple[str, ...], float]:
        """A copy of every sum."""
        with self._lock:
            return dict(self._values)


class Durations:
    """A histogram per label: a count per bucket (not cumulative), and the sum of the values.

    >>> durations = Durations((1, 10))
    >>> for seconds in (0.5, 3, 30):
    ...     durations.observe("check", seconds)
    >>> durations.snapshot()
    {'check': ([1, 1, 1], 33.5)}
    """

    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self._lock = threading.Lock()
        self._values: dict[str, tuple[list[int], float]] = {}

    def observe(self, label: str, value: float) -> None:
        """Count ``value`` in the first bucket that holds it (the last one is +Inf)."""
        index = bisect.bisect_left(self.buckets, value)
        with self._lock:
            counts, total = self._values.get(label) or ([0] * (len(self.buckets) + 1), 0.0)
            counts[index] += 1
            self._values[label] = (counts, total + value)

    def snapshot(self) -> dict[str, tuple[list[int], float]]:
        """A copy of every histogram."""
        with self._lock:
            return {label: (list(counts), total) for label, (counts, total) in self._values.items()}


STEP_SECONDS = Durations(STEP_BUCKETS)
STEP_OUTCOMES = Tally()
SWEEP_FOUND = Tally()
SEND_FAILURES = Tally()


def observed(step: str, run: Callable[[Any], str], job_id: Any) -> str:
    """Run ``run(job_id)`` and count its duration and outcome (``error`` if it raised)."""
    started = time.perf_counter()
    outcome = "error"
    try:
        outcome = run(job_id)
        return outcome
    finally:
        STEP_SECONDS.observe(step, time.perf_counter() - started)
        STEP_OUTCOMES.add((step, outcome))


def sweep_found(sent: dict[str, int]) -> None:
    """Count what one sweep sent, per kind of work."""
    for kind, count in sent.items():
        SWEEP_FOUND.add((kind,), count)


def send_failed(step: str, count: int = 1) -> None:
    """Count step messages that could not be sent."""
    SEND_FAILURES.add((step,), count)
