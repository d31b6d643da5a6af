"""Who sees what: the one rule of ownership that jobs, schedules and webhook endpoints share.

A user sees the objects they own; a user with ``container_manager.view_all_jobs`` (or a
superuser) sees everyone's. ``None`` stands for a trusted caller (Python code, a service
token, the sweep) and sees everything. An object a caller may not see answers like an unknown
one: callers filter with ``owned_by`` and never learn that a hidden row exists.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

#: The permission that lets a user see (and reference) every user's objects.
VIEW_ALL = "container_manager.view_all_jobs"


def sees_everything(user: Any) -> bool:
    """True for a trusted caller (``None``) and for a user with ``view_all_jobs``."""
    return user is None or user.has_perm(VIEW_ALL)


def owned_by(objects: QuerySet, user: Any, field: str = "created_by") -> QuerySet:
    """The part of ``objects`` that ``user`` may see; ``field`` names the owner foreign key."""
    if sees_everything(user):
        return objects
    return objects.filter(**{field: user})
