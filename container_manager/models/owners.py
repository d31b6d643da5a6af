"""Who sees what: the one rule of ownership that jobs, schedules and webhook endpoints share.

A user sees the objects they own; a user with ``container_manager.view_all_jobs`` (or a
superuser) sees everyone's. ``None`` stands for a trusted caller (Python code, a service
token, the sweep) and sees everything. An object a caller may not see answers like an unknown
one: callers filter with ``owned_by`` and never learn that a hidden row exists.
"""

from __future__ import annotations

import operator
from functools import reduce
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

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


def viewers_of(owner_id: Any, field: str = "owner") -> Q:
    """Rows whose user ``field`` may see an object owned by ``owner_id``: the rule above in SQL.

    For a query that must not read users one by one (the outbox, in every move): a NULL
    ``field`` is a trusted caller and sees everything; otherwise the user must be active and
    own the object, be a superuser or hold ``view_all_jobs`` directly or through a group — the
    grants of Django's ``ModelBackend`` (permissions from other backends are not seen here).
    A user model without ``is_active``, ``is_superuser``, ``user_permissions`` or ``groups``
    simply lacks that part.
    """
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    app_label, codename = VIEW_ALL.split(".")
    names = {f.name for f in get_user_model()._meta.get_fields()}
    grant = Permission.objects.filter(content_type__app_label=app_label, codename=codename)
    ways = [Q(**{field: owner_id})] if owner_id is not None else []
    if "is_superuser" in names:
        ways.append(Q(**{f"{field}__is_superuser": True}))
    if "user_permissions" in names:
        ways.append(Q(Exists(grant.filter(user=OuterRef(field)))))
    if "groups" in names:
        ways.append(Q(Exists(grant.filter(group__user=OuterRef(field)))))
    sees = reduce(operator.or_, ways, Q(pk__in=[]))
    if "is_active" in names:
        sees &= Q(**{f"{field}__is_active": True})
    return Q(**{f"{field}__isnull": True}) | sees
