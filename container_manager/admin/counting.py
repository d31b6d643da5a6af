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
    ``ANALYZE`` or autovacuum saw), read in the same query as the capped count; a
    filtered one, or any list on another database, reports ``COUNT_CAP``. Below the
    cap the count is exact. One query, whatever the table size.
    """

    @cached_property
    def count(self) -> int:
        """The number of rows, exact up to ``COUNT_CAP``."""
        queryset = self.object_list
        capped = queryset.order_by().values("pk")[: COUNT_CAP + 1]
        connection = connections[queryset.db]
        if queryset.query.where or connection.vendor != "postgresql":
            return min(capped.count(), COUNT_CAP)
        counted, estimate = _count_and_estimate(connection, capped)
        return counted if counted <= COUNT_CAP else max(estimate, COUNT_CAP)


def _count_and_estimate(connection: Any, capped: Any) -> tuple[int, int]:
    """The rows of ``capped`` (a sliced queryset) and the planner's estimate of its table."""
    sql, params = capped.query.sql_with_params()
    table = connection.ops.quote_name(capped.model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT COUNT(*) FROM ({sql}) AS capped), "
            "(SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass)",
            [*params, table],
        )
        counted, estimate = cursor.fetchone()
    return counted, max(estimate or 0, 0)
