"""New jobs no process announced: what a worker picks up between its sweeps.

With the worker dispatch (``dispatch.worker``, the default of an installed app) a web process
or a shell that submits a job sends nothing. The worker then looks for new pending jobs every
``--pickup-interval`` seconds, one indexed SELECT (``cjob_status_created_idx``), and sends their
launch, so a job starts within that interval rather than at the next sweep. A launch sent twice
is one launch (the step moves the row by compare-and-set), and whatever this misses (a job
whose transaction committed more than ``OVERLAP_SECONDS`` after it was created, more new jobs
than a batch) the sweep still finds from the rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from container_manager.conf import setting
from container_manager.models import ContainerJob
from container_manager.rules import status as st

#: How far back each look reaches before the newest job seen: a job's ``created_at`` is set
#: before its transaction commits, so a job can appear after a newer one did.
OVERLAP_SECONDS = 10


class Pickup:
    """The launches of the pending jobs created since ``since`` that it has not sent yet.

    Array children are left to their parent's launch, as when their submitter sends the hints.
    """

    def __init__(self, since: datetime):
        self.since = since
        self.sent: dict[Any, datetime] = {}

    def due(self) -> list[tuple[str, str, float]]:
        """One ``launch`` for each new pending job, each job once."""
        window = self.since - timedelta(seconds=OVERLAP_SECONDS)
        rows = (
            ContainerJob.objects.filter(
                status=st.PENDING, created_at__gte=window, array_parent__isnull=True
            )
            .order_by("created_at")
            .values_list("pk", "created_at")[: setting("SWEEP_BATCH_SIZE")]
        )
        messages = []
        for pk, created_at in rows:
            if pk not in self.sent:
                self.sent[pk] = created_at
                messages.append(("launch", str(pk), 0.0))
            self.since = max(self.since, created_at)
        self._forget_before(self.since - timedelta(seconds=OVERLAP_SECONDS))
        return messages

    def _forget_before(self, moment: datetime) -> None:
        """Drop the jobs too old for the window to return again: the memory stays bounded."""
        self.sent = {pk: created for pk, created in self.sent.items() if created >= moment}
