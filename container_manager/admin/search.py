"""The admin's job search, shaped so that PostgreSQL answers it from indexes at a million jobs.

A search term matches a job whose name, image or command contains it (case-insensitive),
whose host's name contains it, or whose id it is (a whole UUID). On PostgreSQL the three
``contains`` matches are served by the trigram indexes of migration 0016 (``pg_trgm``, when
the database lets the migration create the extension), and the host match is the ids of the
matching hosts, looked up first in their own small table; so the conditions combine as one
bitmap of index matches instead of a scan of every job. Terms under three characters have no
trigram and still scan. Admin's own rules apply otherwise: terms split on spaces (quotes
keep a phrase), every term must match.
"""

from __future__ import annotations

import uuid

from django.db.models import Q, QuerySet
from django.utils.text import smart_split, unescape_string_literal

from container_manager.models import ExecutorHost

#: The job columns a term is looked for in (``contains``, case-insensitive).
TEXT_FIELDS = ("name", "docker_image", "command")


def search_jobs(jobs: QuerySet, search_term: str) -> QuerySet:
    """``jobs`` narrowed to those that match every term of ``search_term``.

    One query per term for the matching hosts' ids, then a single filter with no join, so
    no row is listed twice.
    """
    for term in _terms(search_term):
        match = Q()
        for field in TEXT_FIELDS:
            match |= Q(**{f"{field}__icontains": term})
        hosts = list(ExecutorHost.objects.filter(name__icontains=term).values_list("pk", flat=True))
        if hosts:
            match |= Q(docker_host_id__in=hosts)
        job_id = _uuid_or_none(term)
        if job_id is not None:
            match |= Q(pk=job_id)
        jobs = jobs.filter(match)
    return jobs


def _terms(search_term: str) -> list[str]:
    """The terms of a search as the admin splits them: on spaces, quotes keeping a phrase."""
    terms = []
    for bit in smart_split(search_term):
        if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
            bit = unescape_string_literal(bit)
        if bit:
            terms.append(bit)
    return terms


def _uuid_or_none(term: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(term)
    except ValueError:
        return None
