"""Recount the metrics' tallies from the job rows: ``manage.py rebuild_metrics``.

A backfill: migration 0015 runs it once; run it again after rows were changed by hand.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from container_manager.models import JobTally


class Command(BaseCommand):
    """Replace every ``JobTally`` row by counts of the finished jobs in the table."""

    help = "Recount the tallies cm/metrics/ reads from the finished jobs' rows."

    def handle(self, *args: Any, **options: Any) -> None:
        JobTally.objects.rebuild()
        self.stdout.write(f"tallies rebuilt: {JobTally.objects.count()} rows")
