"""Errors an executor raises; ``retryable`` tells the launch step whether to try again."""


class ExecutorError(Exception):
    """Base class of every executor error.

    ``retryable`` is True when the same call may succeed later (a connection
    dropped, the platform is busy); False when it never will (bad config,
    missing image, impossible resources).
    """

    retryable = False

    def __init__(self, message: str, *, retryable: bool | None = None):
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class ExecutorConnectionError(ExecutorError):
    """The platform could not be reached or answered with a transient error."""

    retryable = True


class ExecutorResourceError(ExecutorError):
    """The job asks for resources the platform cannot give (memory, CPU, image)."""


class ExecutorConfigurationError(ExecutorError):
    """The host's ``executor_config`` or connection settings are wrong.

    ``key`` names the configuration key at fault when there is one.
    """

    def __init__(self, message: str, *, key: str | None = None, retryable: bool | None = None):
        super().__init__(message, retryable=retryable)
        self.key = key
