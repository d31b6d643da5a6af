"""In-process Prometheus counters: step durations and outcomes, sweep findings, failed sends.

They count what this process did since it started; ``metrics`` adds the row-derived figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

#: The registry ``cm/metrics/`` serves; ``metrics`` registers its row collector here too.
REGISTRY = CollectorRegistry(auto_describe=False)
#: Step durations, from sub-second checks to launches that wait on a slow platform API.
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, float("inf"))

STEP_SECONDS = Histogram(
    "cm_step_duration_seconds",
    "Time a step took in this process.",
    ["step"],
    buckets=STEP_BUCKETS,
    registry=REGISTRY,
)
STEP_OUTCOMES = Counter(
    "cm_step_outcomes",
    "Steps run in this process, by what they answered ('error' when one raised).",
    ["step", "outcome"],
    registry=REGISTRY,
)
SWEEP_FOUND = Counter(
    "cm_sweep_found",
    "Jobs the sweeps of this process found due and sent again, by kind of work.",
    ["kind"],
    registry=REGISTRY,
)
SEND_FAILURES = Counter(
    "cm_dispatch_send_failures",
    "Step messages this process failed to send (the sweep re-sends them).",
    ["step"],
    registry=REGISTRY,
)


def observed(step: str, run: Callable[[Any], str], job_id: Any) -> str:
    """Run ``run(job_id)`` and count its duration and outcome under ``step``."""
    started = time.perf_counter()
    outcome = "error"
    try:
        outcome = run(job_id)
        return outcome
    finally:
        STEP_SECONDS.labels(step).observe(time.perf_counter() - started)
        STEP_OUTCOMES.labels(step, outcome).inc()


def sweep_found(sent: dict[str, int]) -> None:
    """Count what one sweep sent, per kind of work."""
    for kind, count in sent.items():
        SWEEP_FOUND.labels(kind).inc(count)


def send_failed(step: str, count: int = 1) -> None:
    """Count step messages that could not be sent."""
    SEND_FAILURES.labels(step).inc(count)
