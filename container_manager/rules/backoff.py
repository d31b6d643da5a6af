"""How long to wait before trying again: the one backoff of job retries, hosts and webhooks.

Exponential in the attempt, at least half the time already waited, capped, with jitter.
"""

from __future__ import annotations

import random


def backoff(attempt: int, base: float, cap: float, waited: float = 0.0) -> float:
    """Seconds to wait: ``base`` doubled per attempt after the first, or half of ``waited`` if
    that is longer, at most ``cap``, times a jitter between 0.5 and 1.

    >>> 5 <= backoff(2, 5, 60) <= 10, 25 <= backoff(1, 5, 60, waited=100) <= 50
    (True, True)
    >>> backoff(30, 5, 60) <= 60
    True
    """
    ceiling = min(cap, max(base * 2 ** (attempt - 1), waited / 2))
    return ceiling * random.uniform(0.5, 1.0)
