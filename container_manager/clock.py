"""The clock that decides when work is due: the steps, the status machine and the mock executor.

One seam, so that a test stops time (the ``clock`` fixture in tests) instead of racing it.
"""

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    """The current time, timezone-aware: Django's ``timezone.now()`` unless a test froze it.

    >>> now().tzinfo is not None
    True
    """
    return timezone.now()
