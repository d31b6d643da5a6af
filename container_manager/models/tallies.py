"""Finished jobs counted ahead for the metrics scrape: per host, totals and 5-minute buckets.

A job's final move adds it here in its own transaction (``JobTally.objects.record``), so a
scrape reads a few hundred tally rows instead of every job.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, models, transaction

from container_manager.models.hosts import ExecutorHost
from container_manager.models.jobs import ContainerJob
from container_manager.rules import status as st

#: Bucket bounds (seconds) of the submit-to-start and run-time histograms.
BOUNDS = (1, 2, 5, 10, 20, 30, 60, 90, 120, 300, 600, 1800, 3600, 4 * 3600)
#: Width of a time bucket, in seconds.
BUCKET_SECONDS = 300
#: ``kind`` of the rows counting submit-to-start and run times.
WAIT, RUN = "wait", "run"
#: ``bucket`` of the rows that count every finished job, whenever it finished.
ALL_TIME = 0


class JobTallyManager(models.Manager):
    """Adds finished jobs to the tallies, takes deleted ones out, rebuilds them from rows."""

    def record(self, job_id: Any, sign: int = 1) -> None:
        """Add the finished job ``job_id`` as its row stands (``sign=-1``: take it out).

        One statement. Called in the transaction of the final move, after the move's
        compare-and-set changed the row, so a job is counted once however often it is
        harvested; a job not in a final status adds nothing.
        """
        connection = connections[self.db]
        key = ContainerJob._meta.pk.get_db_prep_value(job_id, connection)
        sql, params = tally_sql(connection, self.model, "j.id = %s", [key], sign)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)

    def rebuild(self) -> None:
        """Recount every tally from the job rows (a backfill); exact while jobs keep finishing.

        On PostgreSQL the table is locked against the final moves' upserts first, so a job
        finishing meanwhile is counted by the rebuild or by its own upsert, never both.
        """
        rebuild_tallies(connections[self.db], self.model)


class JobTally(models.Model):
    """Finished jobs of one host: a total per final status, or a histogram of one bucket.

    ``kind`` is a final status with ``bucket`` 0 (``jobs`` and ``cost`` count every
    finished job still in the table), or ``wait``/``run`` with the start of a 5-minute
    bucket in seconds since the epoch (the bucket of the job's start, resp. finish):
    ``jobs`` and ``micros`` (the sum of the times in microseconds), and ``le_<s>`` the jobs
    whose time was at most ``s`` seconds; ``seen`` counts every job of the row, and a
    ``run`` row also the jobs that finished without starting (they count in no
    histogram, but put their host in the window as the old scan did). Written only
    through ``JobTally.objects``.
    """

    host = models.ForeignKey(ExecutorHost, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20)
    bucket = models.BigIntegerField()
    currency = models.CharField(max_length=3, blank=True, default="")
    jobs = models.BigIntegerField(default=0)
    micros = models.BigIntegerField(default=0)
    seen = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    le_1 = models.BigIntegerField(default=0)
    le_2 = models.BigIntegerField(default=0)
    le_5 = models.BigIntegerField(default=0)
    le_10 = models.BigIntegerField(default=0)
    le_20 = models.BigIntegerField(default=0)
    le_30 = models.BigIntegerField(default=0)
    le_60 = models.BigIntegerField(default=0)
    le_90 = models.BigIntegerField(default=0)
    le_120 = models.BigIntegerField(default=0)
    le_300 = models.BigIntegerField(default=0)
    le_600 = models.BigIntegerField(default=0)
    le_1800 = models.BigIntegerField(default=0)
    le_3600 = models.BigIntegerField(default=0)
    le_14400 = models.BigIntegerField(default=0)

    objects = JobTallyManager()

    class Meta:
        verbose_name = "job tally"
        constraints = [
            models.UniqueConstraint(
                fields=["host", "kind", "bucket", "currency"], name="cm_tally_key"
            )
        ]
        indexes = [models.Index(fields=["bucket"], name="cm_tally_bucket_idx")]

    def __str__(self) -> str:
        return f"{self.kind} of host {self.host_id} at {self.bucket}: {self.jobs}"


def job_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    """``pre_delete`` of a job: a finished job leaves the tallies with its row."""
    if instance.__dict__.get("status", st.COMPLETED) in st.TERMINAL:
        JobTally.objects.record(instance.pk, sign=-1)


def rebuild_tallies(connection: Any, tally: Any, job: Any = None) -> None:
    """Replace every row of the model ``tally`` by counts of the finished rows of ``job``.

    ``job`` defaults to ``ContainerJob``; a migration passes its historical models.
    """
    job = job or ContainerJob
    quote = connection.ops.quote_name
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {quote(tally._meta.db_table)} IN EXCLUSIVE MODE")
        cursor.execute(f"DELETE FROM {quote(tally._meta.db_table)}")
        sql, params = tally_sql(connection, tally, "TRUE", [], 1, job)
        cursor.execute(sql, params)


#: The job columns ``tally_sql`` reads: a ``rows`` source must have each of them.
TALLIED_COLUMNS = (
    "docker_host_id", "status", "cost_currency", "estimated_cost", "created_at", "started_at",
    "completed_at",
)  # fmt: skip


def tally_sql(
    connection: Any,
    tally: Any,
    where: str,
    params: list[Any],
    sign: int,
    job: Any = None,
    rows: str = "",
) -> tuple[str, list[Any]]:
    """The upsert adding ``sign`` × the finished jobs ``j`` matching ``where`` to ``tally``.

    Each job gives a total row (its status), a ``wait`` row in the bucket of its start
    if it started and a ``run`` row in the bucket of its finish; rows of one key are
    summed before the upsert adds them, in bucket order (so a rebuild writes a
    window's rows side by side). ``rows`` names another source of job rows than the
    table (a CTE with the ``TALLIED_COLUMNS``: a PostgreSQL move's ``moved``).
    """
    job = job or ContainerJob
    quote = connection.ops.quote_name
    jobs, table = rows or quote(job._meta.db_table), quote(tally._meta.db_table)
    final = ", ".join(f"'{status}'" for status in sorted(st.TERMINAL))
    source = f"FROM {jobs} j WHERE ({where}) AND j.status IN ({final})"
    zeros = ", ".join(f"0 AS le_{b}" for b in BOUNDS)
    totals = (
        f"SELECT j.docker_host_id AS host_id, j.status AS kind, {ALL_TIME} AS bucket, "
        "j.cost_currency AS currency, 1 AS jobs, 0 AS micros, 1 AS seen, "
        f"j.estimated_cost AS cost, {zeros} {source}"
    )
    parts = [totals]
    for kind, start, end in (
        (WAIT, "j.created_at", "j.started_at"),
        (RUN, "j.started_at", "j.completed_at"),
    ):
        micros = _micros(connection, start, end)
        # NULL (never started) is within no bound: such a job is only ``seen``.
        buckets = ", ".join(
            f"CASE WHEN {micros} <= {bound * 1_000_000} THEN 1 ELSE 0 END" for bound in BOUNDS
        )
        parts.append(
            f"SELECT j.docker_host_id, '{kind}', {_bucket(connection, end)}, '', "
            f"CASE WHEN {start} IS NULL THEN 0 ELSE 1 END, COALESCE({micros}, 0), 1, NULL, "
            f"{buckets} {source} AND {end} IS NOT NULL"
        )
    counted = ["jobs", "micros", "seen", *(f"le_{b}" for b in BOUNDS)]
    key = ["host_id", "kind", "bucket", "currency"]
    sums = ", ".join(f"SUM(c.{name}) * {sign}" for name in [*counted, "cost"])
    added = ", ".join(f"{name} = {table}.{name} + EXCLUDED.{name}" for name in counted)
    cost = f"cost = COALESCE({table}.cost + EXCLUDED.cost, {table}.cost, EXCLUDED.cost)"
    # SQLite reads ON CONFLICT after a bare SELECT ... FROM as a join: the WHERE settles it.
    sql = (
        f"INSERT INTO {table} ({', '.join([*key, *counted, 'cost'])}) "
        f"SELECT {', '.join(f'c.{k}' for k in key)}, {sums} "
        f"FROM ({' UNION ALL '.join(parts)}) AS c WHERE TRUE "
        f"GROUP BY {', '.join(f'c.{k}' for k in key)} ORDER BY c.bucket "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {added}, {cost}"
    )
    return sql, params * len(parts)


def bucket_of(epoch_seconds: float) -> int:
    """The start of the bucket holding ``epoch_seconds``.

    >>> bucket_of(601.5), bucket_of(599)
    (600, 300)
    """
    return int(epoch_seconds // BUCKET_SECONDS) * BUCKET_SECONDS


def _micros(connection: Any, start: str, end: str) -> str:
    """SQL: microseconds from ``start`` to ``end``, exact (as the ORM compares durations)."""
    if connection.vendor == "postgresql":
        return f"CAST(EXTRACT(EPOCH FROM ({end} - {start})) * 1000000 AS BIGINT)"
    return f"django_timestamp_diff({end}, {start})"


def _bucket(connection: Any, moment: str) -> str:
    """SQL: ``bucket_of`` the time ``moment``."""
    width = BUCKET_SECONDS
    if connection.vendor == "postgresql":
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM {moment}) / {width}) AS BIGINT) * {width}"
    return f"(CAST(strftime('%%s', {moment}) AS INTEGER) / {width}) * {width}"
