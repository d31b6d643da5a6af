"""A paginator for big tables: the planner's estimate for a whole table, a capped count otherwise.

Django's paginator counts every matching row to number the pages; at a million jobs that
``COUNT(*)`` costs more than the page it numbers.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

#: Matches counted at most; a list with more shows this many (and its pages).
COUNT_CAP = 10_000


class EstimatedCountPaginator(Paginator):
    """Counts at most ``COUNT_CAP + 1`` rows; past the cap, an estimate or the cap.

    An unfiltered list on PostgreSQL reports ``pg_class.reltuples`` (what the last
    ``ANALYZE`` or autovacuum saw); a filtered one, or any list on another database,
    reports ``COUNT_CAP``. Below the cap the count is exact. One or two small queries.
    """

    @cached_property
    def count(self) -> int:
        """The number of rows, exact up to ``COUNT_CAP``."""
        queryset = self.object_list
        counted = queryset.order_by()[: COUNT_CAP + 1].count()
        if counted <= COUNT_CAP:
            return counted
        if queryset.query.where:
            return COUNT_CAP
        return max(_estimate(queryset), COUNT_CAP)


def _estimate(queryset: Any) -> int:
    """The planner's row estimate of ``queryset``'s table on PostgreSQL, else 0."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            [connection.ops.quote_name(queryset.model._meta.db_table)],
        )
        row = cursor.fetchone()
    return max(row[0], 0) if row else 0
