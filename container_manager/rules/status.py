"""Job statuses and the moves between them; nothing else may change a job's status.

Terminal statuses never change again. ``check_move`` is the one rule book.
"""

from django.core.exceptions import ValidationError
from django.db import models


class JobStatus(models.TextChoices):
    """A job's status; what a platform says of an execution is ``ExecutionState``."""

    PENDING = "pending", "Pending"
    LAUNCHING = "launching", "Launching"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    TIMEOUT = "timeout", "Timeout"
    CANCELLED = "cancelled", "Cancelled"
    #: A workflow node whose dependency edges can no longer all fire; it never ran.
    SKIPPED = "skipped", "Skipped"


PENDING = JobStatus.PENDING
LAUNCHING = JobStatus.LAUNCHING
RUNNING = JobStatus.RUNNING
COMPLETED = JobStatus.COMPLETED
FAILED = JobStatus.FAILED
TIMEOUT = JobStatus.TIMEOUT
CANCELLED = JobStatus.CANCELLED
SKIPPED = JobStatus.SKIPPED

STATUS_CHOICES = JobStatus.choices

TERMINAL = frozenset({COMPLETED, FAILED, TIMEOUT, CANCELLED, SKIPPED})
LIVE = frozenset({PENDING, LAUNCHING, RUNNING})
#: Statuses in which a job holds one of its host's ``max_concurrent_jobs`` slots.
HOLDS_SLOT = frozenset({LAUNCHING, RUNNING})

MOVES: dict[str, frozenset[str]] = {
    # pending -> skipped: a workflow node whose edges can no longer all fire.
    PENDING: frozenset({LAUNCHING, FAILED, CANCELLED, SKIPPED}),
    # launching -> launching: the sweep takes over a launch whose lease expired.
    # launching -> pending: a retryable launch error, tried again later.
    LAUNCHING: frozenset({LAUNCHING, RUNNING, PENDING, FAILED, CANCELLED}),
    RUNNING: frozenset({COMPLETED, FAILED, TIMEOUT, CANCELLED}),
}

#: An array parent's status follows its children: it never launches nor holds a slot.
ARRAY_PARENT_MOVES: dict[str, frozenset[str]] = {
    # pending -> completed: every child failed at its launch, within ``tolerated_failures``.
    PENDING: frozenset({RUNNING, COMPLETED, FAILED, CANCELLED, SKIPPED}),
    RUNNING: frozenset({COMPLETED, FAILED, CANCELLED}),
}

#: When a dependency edge fires: on its job's success (the default), failure, or any end.
SUCCESS = "success"
FAILURE = "failure"
ALWAYS = "always"
EDGE_CONDITIONS = (SUCCESS, FAILURE, ALWAYS)
#: The final statuses of a dependency on which an edge of each condition fires.
FIRES_ON: dict[str, frozenset[str]] = {
    SUCCESS: frozenset({COMPLETED}),
    FAILURE: frozenset({FAILED, TIMEOUT}),
    ALWAYS: TERMINAL,
}


def edge_fires(condition: str, status: str) -> bool | None:
    """Whether an edge of ``condition`` fires on a dependency in ``status``; None while it may.

    True: it fired. False: the dependency ended in a status on which the edge never fires,
    so the job waiting on it is doomed. None: the dependency has not ended.

    >>> edge_fires("success", "completed"), edge_fires("failure", "completed")
    (True, False)
    >>> edge_fires("failure", "timeout"), edge_fires("always", "skipped")
    (True, True)
    >>> print(edge_fires("always", "running"))
    None
    """
    if status not in TERMINAL:
        return None
    return status in FIRES_ON[condition]


class InvalidTransition(ValidationError):
    """A status change the machine does not allow (a terminal job, a skipped step)."""


def check_move(old: str, new: str, array_parent: bool = False) -> None:
    """Raise ``InvalidTransition`` unless ``old -> new`` is a move of the machine.

    ``array_parent`` checks against the moves of an array parent instead.

    >>> check_move("pending", "launching")
    >>> check_move("completed", "running")
    Traceback (most recent call last):
    ...
    container_manager.rules.status.InvalidTransition: ["status: 'completed' is terminal and never \
changes (asked to move to 'running')"]
    """
    if old in TERMINAL:
        raise InvalidTransition(
            f"status: {old!r} is terminal and never changes (asked to move to {new!r})"
        )
    if new not in (ARRAY_PARENT_MOVES if array_parent else MOVES).get(old, ()):
        raise InvalidTransition(f"status: {old!r} cannot move to {new!r}")
