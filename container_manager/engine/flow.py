"""Whether stop events flow for a host, and the check delays that follow from it.

The steps ask here; the Docker follower says here when its stream is open or a container died.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from container_manager.conf import setting

if TYPE_CHECKING:
    from container_manager.models import ContainerJob, ExecutorHost

#: Executor types whose stop events a deployment can wire up (``PLATFORM_EVENTS``); Docker's
#: are followed by the local backend without a setting.
EVENT_SOURCES = frozenset({"fargate", "cloudrun"})
#: How long a "this execution stopped" note is kept for a launch that has not recorded it yet.
STOPPED_NOTE_SECONDS = 120.0
#: Notes kept at most; the oldest go first.
STOPPED_NOTE_LIMIT = 10_000

_lock = threading.Lock()
_following: set[int] = set()
_stopped: dict[str, float] = {}


def mark_following(host_id: int, following: bool) -> None:
    """Say whether this process now receives the stop events of ``host_id``'s executions."""
    with _lock:
        if following:
            _following.add(host_id)
        else:
            _following.discard(host_id)


def events_flow(host: ExecutorHost) -> bool:
    """True when stop events of this host's executions reach this deployment.

    Docker: while this process follows the engine's event stream. Other platforms: when their
    executor type is listed in ``PLATFORM_EVENTS`` (the deployment wired the events up).
    """
    with _lock:
        if host.pk in _following:
            return True
    return host.executor_type in (setting("PLATFORM_EVENTS") or ())


def check_delay(job: ContainerJob, delay: float) -> float:
    """The delay before a running job's next check: ``CHECK_DELAY_WITH_EVENTS`` while events flow.

    Never past the job's deadline: a timeout is found by a check, not by an event.
    """
    if not events_flow(job.docker_host):
        return delay
    return max(delay, float(setting("CHECK_DELAY_WITH_EVENTS")))


def first_check_delay(job: ContainerJob, execution_id: str, delay: float) -> float:
    """The delay of the check a launch sends: 0 when its execution already stopped.

    A container that exits at once can die before the launch has recorded it; its event then
    found the job still launching, and only this note tells the launch to look now.
    """
    if stopped_while_recording(execution_id):
        return 0.0
    return min(check_delay(job, delay), float(job.timeout_seconds))


def stopped_while_recording(execution_id: str) -> bool:
    """True (once) when a stop event came while the launch was recording its execution.

    That event's harvest ran before the move to ``running`` committed and found the job still
    launching, so the launch sends the harvest again. A note left by an event that came after
    the move costs one more harvest, which finds the job already finished.
    """
    with _lock:
        return _stopped.pop(execution_id, None) is not None


def note_stopped(execution_id: str) -> None:
    """Remember that an execution stopped, for a launch that has not recorded it yet."""
    now = time.monotonic()
    with _lock:
        _stopped[execution_id] = now
        if len(_stopped) > STOPPED_NOTE_LIMIT:
            oldest = sorted(_stopped, key=_stopped.__getitem__)[: len(_stopped) // 10]
            for key in oldest:
                del _stopped[key]
        for key in [k for k, at in _stopped.items() if now - at > STOPPED_NOTE_SECONDS]:
            del _stopped[key]
