"""Cloud Run job completions: the system log entry of a finished execution, pushed by Pub/Sub.

A log sink sends the entry to a topic whose push subscription posts it to ``events/cloudrun/``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from container_manager.events import hints
from container_manager.rules import status as st

if TYPE_CHECKING:
    from container_manager.engine.runner import StepOutcome

RESOURCE_TYPE = "cloud_run_job"
EXECUTION_LABEL = "run.googleapis.com/execution_name"


@dataclass(frozen=True)
class ExecutionEnded:
    """A Cloud Run job execution that the log says has finished."""

    location: str
    job: str
    execution: str
    message_id: str

    @property
    def name_suffix(self) -> str:
        """The end of the execution's resource name (its project may be a number or an id)."""
        return f"/locations/{self.location}/jobs/{self.job}/executions/{self.execution}"


def parse_push(body: bytes) -> ExecutionEnded | None:
    """Read a Pub/Sub push of a Cloud Logging entry; None for an entry of something else.

    ``ValueError`` names the field that is wrong with the envelope or the entry.

    >>> entry = {"resource": {"type": "cloud_run_job",
    ...          "labels": {"job_name": "jobs", "location": "europe-west1"}},
    ...          "labels": {"run.googleapis.com/execution_name": "jobs-x7k2p"}}
    >>> data = base64.b64encode(json.dumps(entry).encode()).decode()
    >>> parse_push(json.dumps({"message": {"data": data, "messageId": "1"}}).encode()).name_suffix
    '/locations/europe-west1/jobs/jobs/executions/jobs-x7k2p'
    >>> parse_push(b'{"message": {}}')
    Traceback (most recent call last):
    ...
    ValueError: message.data: must be base64 of a JSON log entry
    """
    try:
        envelope = json.loads(body or b"null")
    except ValueError:
        raise ValueError("body: must be a JSON Pub/Sub push envelope") from None
    message = envelope.get("message") if isinstance(envelope, dict) else None
    if not isinstance(message, dict):
        raise ValueError("message: must be an object")
    try:
        entry = json.loads(base64.b64decode(message.get("data") or "", validate=True))
    except (ValueError, TypeError, binascii.Error):
        entry = None
    if not isinstance(entry, dict):
        raise ValueError("message.data: must be base64 of a JSON log entry")
    resource = entry.get("resource") or {}
    if not isinstance(resource, dict) or resource.get("type") != RESOURCE_TYPE:
        return None
    resource_labels = resource.get("labels") or {}
    execution = (entry.get("labels") or {}).get(EXECUTION_LABEL)
    for field, value in (
        ("resource.labels.location", resource_labels.get("location")),
        ("resource.labels.job_name", resource_labels.get("job_name")),
        (f"labels.{EXECUTION_LABEL}", execution),
    ):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{field}: must be a non-empty string")
    return ExecutionEnded(
        resource_labels["location"],
        resource_labels["job_name"],
        execution,
        str(message.get("messageId") or ""),
    )


def handle(ended: ExecutionEnded) -> StepOutcome:
    """Harvest the running job whose execution ended; ``unknown-execution`` if none has it."""
    from container_manager.models import ContainerJob

    job_id = (
        ContainerJob.objects.filter(status=st.RUNNING, execution_id__endswith=ended.name_suffix)
        .values_list("pk", flat=True)
        .first()
    )
    if job_id is None:
        return hints.answered("unknown-execution")
    return hints.harvest_now(job_id, "Cloud Run")
