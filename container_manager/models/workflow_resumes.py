"""The record of each resume of a workflow: who re-ran which nodes, and when.

Written by ``engine.retry.retry_workflow`` in the transaction that re-runs the nodes.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class WorkflowResume(models.Model):
    """One resume of a workflow: its re-run nodes, each with its old job and its new one."""

    workflow = models.ForeignKey(
        "Workflow",
        on_delete=models.CASCADE,
        related_name="resumes",
        help_text="The workflow resumed.",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who resumed it; empty for trusted code.",
    )
    at = models.DateTimeField(default=timezone.now, help_text="When it was resumed.")
    nodes = models.JSONField(
        help_text='The nodes re-run: [{"node": name, "job": old job id, "retry": new job id}].'
    )
    count = models.PositiveIntegerField(help_text="How many nodes were re-run.")

    class Meta:
        ordering = ["workflow", "at", "pk"]
        indexes = [models.Index(fields=["workflow", "at"], name="cwf_resume_idx")]

    def __str__(self) -> str:
        return f"resume of {self.workflow_id} at {self.at:%Y-%m-%d %H:%M:%S}: {self.count} node(s)"

    @property
    def node_names(self) -> list[str]:
        """The names of the nodes re-run, in the order they were recorded."""
        return [entry["node"] for entry in self.nodes]
