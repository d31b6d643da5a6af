"""Job labels as rows: one ``JobLabel`` per key, indexed on (key, value) so the job list
filters by them on every database; the job's own ``labels`` column is what it carries."""

from __future__ import annotations

from typing import Any

from django.db import connections, models


class JobLabel(models.Model):
    """One label of a job: written with the job (``create_job``), never changed after.

    The job's ``labels`` JSON holds the same pairs for reading (the API, the launch); these
    rows are their index: ``ContainerJob.objects.filter(pk__in=JobLabel.objects.filter(
    key=k, value=v).values("job_id"))`` is served by ``cm_label_kv_idx`` on SQLite and
    PostgreSQL alike, which a JSON column's index is not.
    """

    job = models.ForeignKey(
        "container_manager.ContainerJob", on_delete=models.CASCADE, related_name="label_rows"
    )
    key = models.CharField(max_length=317)
    value = models.CharField(max_length=63, blank=True)

    class Meta:
        verbose_name = "job label"
        constraints = [models.UniqueConstraint(fields=["job", "key"], name="cm_label_job_key")]
        indexes = [models.Index(fields=["key", "value"], name="cm_label_kv_idx")]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


def with_label(jobs: Any, key: str, value: str) -> Any:
    """The ``jobs`` queryset narrowed to jobs carrying the label ``key=value``.

    An ``IN`` over the label rows of that pair, found through ``cm_label_kv_idx``.
    """
    return jobs.filter(pk__in=JobLabel.objects.filter(key=key, value=value).values("job_id"))


def save_labels(job: models.Model) -> None:
    """Write the rows of a saved job's ``labels`` and, for an array parent, its children's.

    The children (inserted just before, ``workflows.insert_children``) carry the parent's
    labels; theirs are one ``INSERT … SELECT`` whatever the array's size.
    """
    if not job.labels:
        return
    JobLabel.objects.bulk_create(
        [JobLabel(job=job, key=key, value=value) for key, value in job.labels.items()]
    )
    if job.array_size:
        connection = connections[JobLabel.objects.db]
        quote = connection.ops.quote_name
        labels, jobs = quote(JobLabel._meta.db_table), quote(job._meta.db_table)
        key = job._meta.pk.get_db_prep_value(job.pk, connection)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {labels} (job_id, key, value) SELECT c.id, l.key, l.value "
                f"FROM {jobs} c CROSS JOIN {labels} l "
                "WHERE c.array_parent_id = %s AND l.job_id = %s",
                [key, key],
            )
