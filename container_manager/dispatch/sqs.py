"""Dispatch through Amazon SQS: one message per step, read by the Lambda that zappa deploys.

Delays up to 15 minutes ride on ``DelaySeconds``; longer ones are left to the sweep.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from container_manager.dispatch.base import DispatchBackend
from container_manager.telemetry import counters

logger = logging.getLogger(__name__)

#: SQS holds a message back for at most this long (seconds).
SQS_MAX_DELAY = 900
#: Messages per SendMessageBatch call, SQS's limit.
SQS_BATCH_SIZE = 10


class SQSBackend(DispatchBackend):
    """Send each step as an SQS message ``{"step": ..., "job_id": ...}`` to a standard queue.

    Options:
        ``QUEUE_URL`` (required): the queue's URL.
        ``REGION``: its region (else boto3's default: ``AWS_REGION`` / the Lambda's own).
        ``ENDPOINT_URL``: another SQS endpoint, e.g. a moto server in tests.

    The boto3 client is built at the first send, once per process. A send that
    SQS refuses is logged, not raised: the row keeps the work and the sweep sends it again.
    """

    max_delay = SQS_MAX_DELAY

    def __init__(self, options: dict[str, Any]):
        super().__init__(options)
        self.queue_url = self.options.get("QUEUE_URL")
        if not self.queue_url:
            raise ImproperlyConfigured(
                "CONTAINER_MANAGER['DISPATCH']['OPTIONS']['QUEUE_URL'] is required by SQSBackend "
                "(functions project: set CM_SQS_QUEUE_URL)"
            )
        self._client: Any = None
        self._lock = threading.Lock()

    def deliver(self, step: str, job_id: str, delay: float) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client().send_message(
                QueueUrl=self.queue_url,
                MessageBody=encode_message(step, job_id),
                # Rounded up: a check that arrives early is dropped as a duplicate.
                DelaySeconds=math.ceil(delay),
            )
        except (BotoCoreError, ClientError):
            counters.send_failed(step)
            logger.warning("sending %s of job %s to SQS failed; the sweep will resend it",
                           step, job_id, exc_info=True)  # fmt: skip

    def deliver_many(self, messages: list[tuple[str, str, float]]) -> None:
        """Send in batches of ten (``SendMessageBatch``): a sweep's sends take few requests."""
        from botocore.exceptions import BotoCoreError, ClientError

        entries = [
            {"Id": str(n), "MessageBody": encode_message(step, job_id),
             "DelaySeconds": math.ceil(delay)}
            for n, (step, job_id, delay) in enumerate(messages)
        ]  # fmt: skip
        for start in range(0, len(entries), SQS_BATCH_SIZE):
            batch = entries[start : start + SQS_BATCH_SIZE]
            try:
                failed = self.client().send_message_batch(QueueUrl=self.queue_url, Entries=batch)
            except (BotoCoreError, ClientError):
                for entry in batch:
                    counters.send_failed(messages[int(entry["Id"])][0])
                logger.warning("sending %d steps to SQS failed; the sweep will resend them",
                               len(batch), exc_info=True)  # fmt: skip
                continue
            for failure in failed.get("Failed", []):
                counters.send_failed(messages[int(failure["Id"])][0])
                logger.warning("SQS refused a step (%s); the sweep will resend it",
                               failure.get("Code"))  # fmt: skip

    def client(self) -> Any:
        """The process's SQS client, built at the first call."""
        with self._lock:
            if self._client is None:
                import boto3

                self._client = boto3.session.Session().client(
                    "sqs",
                    region_name=self.options.get("REGION") or None,
                    endpoint_url=self.options.get("ENDPOINT_URL") or None,
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def encode_message(step: str, job_id: str) -> str:
    """The body of one step message.

    >>> encode_message("check", "42")
    '{"step": "check", "job_id": "42"}'
    """
    return json.dumps({"step": step, "job_id": str(job_id)})


def decode_message(body: str) -> tuple[str, str]:
    """``(step, job_id)`` from a message body; ``ValueError`` says what is wrong with it.

    >>> decode_message('{"step": "launch", "job_id": "7"}')
    ('launch', '7')
    >>> decode_message('{"step": "launch"}')
    Traceback (most recent call last):
    ...
    ValueError: message has no job_id
    """
    try:
        message = json.loads(body)
    except (TypeError, ValueError):
        raise ValueError("message body is not JSON") from None
    if not isinstance(message, dict):
        raise ValueError("message body is not a JSON object")
    step, job_id = message.get("step"), message.get("job_id")
    if not isinstance(step, str) or not step:
        raise ValueError("message has no step")
    if job_id in (None, ""):
        raise ValueError("message has no job_id")
    return step, str(job_id)
