"""Errors an executor raises; ``retryable`` tells the launch step whether to try again."""


class ExecutorError(Exception):
    """Base class of every executor error.

    ``retryable`` is True when the same call may succeed later (a connection
    dropped, the platform is busy, an image not there yet); False when it never
    will (bad config, impossible resources).
    """

    retryable = False

    def __init__(self, message: str, *, retryable: bool | None = None):
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class ExecutorConnectionError(ExecutorError):
    """The platform could not be reached or answered with a transient error."""

    retryable = True


class ImagePullError(ExecutorError):
    """The platform answered that it cannot get the job's image; the message names the image.

    The image does not exist, access to it was denied, or its registry did not answer
    the platform's pull: the job's fault, not the host's (the host answered). So, unlike
    ``ExecutorConnectionError``, it uses the attempt: the launch is tried again with
    backoff while ``max_attempts`` allow (an image may be pushed, or a registry come
    back, in the meantime), then the job fails with this message.
    """

    retryable = True


class ExecutorResourceError(ExecutorError):
    """The job asks for resources the platform cannot give (memory, CPU, a network)."""


class ExecutorConfigurationError(ExecutorError):
    """The host's ``executor_config`` or connection settings are wrong.

    ``key`` names the configuration key at fault when there is one.
    """

    def __init__(self, message: str, *, key: str | None = None, retryable: bool | None = None):
        super().__init__(message, retryable=retryable)
        self.key = key
