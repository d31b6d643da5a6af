"""Why a task's container ended without the task's own exception: what ``TaskError`` names then.

The runner reports an exception the task raised by its own type; these stand for the rest.
"""


class ContainerTaskError(Exception):
    """The task's container ended without a result: launch failed, killed, vanished, no result."""


class TaskTimedOut(ContainerTaskError):
    """The container ran past the task's ``timeout_seconds`` and was stopped."""


class TaskCancelled(ContainerTaskError):
    """The job was cancelled before the task finished."""
