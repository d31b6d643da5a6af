"""Phase timings of an attempt: what the harvest step records, and the timeline drawn from them.

Submitted, launch requested, accepted, container started, finished, harvested (``phases()``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from container_manager import clock

if TYPE_CHECKING:
    from container_manager.executors.types import HarvestResult
    from container_manager.models import ContainerExecution, ContainerJob

#: The JSON API's key of each phase (``timings[].phases``): its name without spaces.
PHASE_KEYS = {
    "submitted": "submitted",
    "launch requested": "launch_requested",
    "accepted": "accepted",
    "container started": "container_started",
    "finished": "finished",
    "harvested": "harvested",
}

#: The stretch between two phases, named after what happens in it.
SEGMENTS = {
    "launch requested": "waiting",
    "accepted": "launching",
    "container started": "starting",
    "finished": "running",
    "harvested": "harvesting",
}


def harvested(
    job: ContainerJob, result: HarvestResult | None, accepted: datetime | None = None
) -> dict[str, Any]:
    """Fields of the attempt's ``ContainerExecution`` to store with the harvest.

    ``job.started_at`` already holds the platform's start time where it gave one;
    ``result`` (None when nothing could be read) has the platform's timestamps;
    ``accepted`` is the attempt's ``accepted_at`` as the launch step stamped it.
    """
    times = result.platform_times if result is not None else {}
    fields = {
        "harvested_at": clock.now(),
        "container_started_at": job.started_at,
        "platform_times": {name: at.isoformat() for name, at in times.items()},
    }
    truer = accepted_before_start(accepted, job.started_at, job.created_at)
    if truer is not None:
        fields["accepted_at"] = truer
    return fields


def accepted_before_start(
    stamped: datetime | None, container_started: datetime | None, submitted: datetime | None
) -> datetime | None:
    """When the platform accepted the launch, if it was earlier than the launch step's stamp.

    The launch step stamps "accepted" when the platform's start call returns; Docker (and the
    mock) start the container inside that call, so the container's own start comes first.
    The platform accepted the launch no later than it started the container: the start time
    is the truer one. A platform start before the job was submitted is a clock that is off,
    and the stamp stays (None).

    >>> t = datetime(2024, 1, 1, 12, 0, 10)
    >>> accepted_before_start(t, t.replace(second=9), t.replace(second=0)).second
    9
    >>> accepted_before_start(t, t.replace(second=11), t), accepted_before_start(t, t, t)
    (None, None)
    >>> accepted_before_start(t, t.replace(second=0), t.replace(second=5)) is None
    True
    """
    if stamped is None or container_started is None or container_started >= stamped:
        return None
    if submitted is not None and container_started < submitted:
        return None
    return container_started


def timeline(phases: list[tuple[str, datetime]]) -> list[dict[str, Any]]:
    """Segments between consecutive phases, each with its seconds and share of the whole.

    A platform clock a little behind ours can put a phase before the one it
    follows; such a segment counts as zero seconds.

    >>> from datetime import timedelta
    >>> t = datetime(2024, 1, 1, 12, 0)
    >>> [(s["name"], s["seconds"], s["percent"]) for s in timeline([
    ...     ("submitted", t), ("launch requested", t + timedelta(seconds=1)),
    ...     ("accepted", t + timedelta(seconds=2)), ("container started", t + timedelta(seconds=4)),
    ... ])]
    [('waiting', 1.0, 25.0), ('launching', 1.0, 25.0), ('starting', 2.0, 50.0)]
    """
    spans = [
        (SEGMENTS.get(name, name), start_name, name, max((end - start).total_seconds(), 0.0))
        for (start_name, start), (name, end) in zip(phases, phases[1:], strict=False)
    ]
    total = sum(span[3] for span in spans)
    return [
        {
            "name": label,
            "from": start_name,
            "to": end_name,
            "seconds": round(seconds, 3),
            "percent": round(100 * seconds / total, 2) if total else 0.0,
        }
        for label, start_name, end_name, seconds in spans
    ]


def as_json(execution: ContainerExecution) -> dict[str, Any]:
    """An attempt's phases (keyed by ``PHASE_KEYS``) and platform timestamps for the JSON API."""
    return {
        "attempt": execution.attempt,
        "status": execution.status,
        "phases": {PHASE_KEYS[name]: at.isoformat() for name, at in execution.phases()},
        "platform_times": execution.platform_times,
    }
