"""Helpers the tests share: submit a job the way callers do, read its row as stored now, race."""

import threading
from datetime import timedelta

from django.db import connections
from django.utils import timezone

from container_manager.engine import steps
from container_manager.models import ContainerJob

#: A sweep's statements: 12 that find due work (3 of them the jobs to settle, 1 the children of
#: arrays with max_parallel, 1 the live arrays whose children all ended), then BEGIN, one
#: DELETE each of expired idempotency keys and past request counts, COMMIT.
SWEEP_STATEMENTS = 16


def submit(host, **kwargs):
    """A job submitted through ``create_job`` on ``host``: image ``x``, command ``true``."""
    return ContainerJob.objects.create_job(image="x", command="true", docker_host=host, **kwargs)


def row(job):
    """``job``'s row as the database holds it now."""
    return ContainerJob.objects.get(pk=job.pk)


def race(work, threads):
    """Run ``work()`` in ``threads`` threads released together; wait for all of them to end.

    Each thread closes its database connections when ``work`` returns or raises.
    """
    barrier = threading.Barrier(threads)

    def run():
        try:
            barrier.wait()
            work()
        finally:
            connections.close_all()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def sweep_until_done(recording, rounds=40):
    """Lose every message the steps send; sweep a minute later each round until no job is live."""
    later = timezone.now()
    for _ in range(rounds):
        recording.take()
        later += timedelta(seconds=60)
        steps.sweep(now=later)
        for step, job_id, _ in recording.take():
            steps.run_step(step, job_id)
        if not ContainerJob.objects.live().exists():
            return
