"""Helpers the tests share: submit a job the way callers do, and read its row as stored now."""

from container_manager.models import ContainerJob

#: A sweep's statements: 8 that find due work, then BEGIN, one DELETE each of expired
#: idempotency keys and past request counts, COMMIT.
SWEEP_STATEMENTS = 12


def submit(host, **kwargs):
    """A job submitted through ``create_job`` on ``host``: image ``x``, command ``true``."""
    return ContainerJob.objects.create_job(image="x", command="true", docker_host=host, **kwargs)


def row(job):
    """``job``'s row as the database holds it now."""
    return ContainerJob.objects.get(pk=job.pk)
