"""Which capability each job field needs: checked when a job is submitted, naming the field.

A job asking for what its host's platform cannot do is refused before it is stored.
"""

from __future__ import annotations

from typing import Any

#: Job field -> (capability it needs, what to say when the platform lacks it).
NEEDS: dict[str, tuple[str, str]] = {
    "memory_limit": ("supports_resource_limits", "cannot limit memory"),
    "cpu_limit": ("supports_resource_limits", "cannot limit CPU"),
    "network_configuration": ("supports_networking", "cannot attach networks"),
}


def missing(job: Any, capabilities: dict[str, bool]) -> dict[str, str]:
    """``{field: reason}`` for each field ``job`` sets whose capability the platform lacks.

    >>> from types import SimpleNamespace as Job
    >>> missing(Job(memory_limit=256, cpu_limit=None, network_configuration=[]), {})
    {'memory_limit': 'cannot limit memory'}
    """
    found = {}
    for field, (capability, reason) in NEEDS.items():
        if getattr(job, field, None) not in (None, [], {}) and not capabilities.get(capability):
            found[field] = reason
    return found
