"""Dispatch through Google Cloud Tasks: one HTTP task per step, pushed to ``steps/<step>/``.

Authenticated by an OIDC token Cloud Tasks mints for a service account, or an HMAC signature.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from container_manager.dispatch.base import DispatchBackend
from container_manager.web.auth import sign_request

logger = logging.getLogger(__name__)

#: Cloud Tasks refuses a schedule_time more than 30 days ahead.
MAX_SCHEDULE_SECONDS = 30 * 24 * 3600
#: API Gateway ends requests after 30 s; the push must give up before that.
DEFAULT_DISPATCH_DEADLINE = 25
#: Concurrent create_task calls in one ``send_many``.
SEND_THREADS = 16


class CloudTasksBackend(DispatchBackend):
    """Create an HTTP task per step on one queue.

    Options:
        ``PROJECT``, ``LOCATION``, ``QUEUE``: the queue.
        ``TARGET_BASE_URL``: where ``container_manager.urls`` is mounted, e.g.
            ``https://example.com/cm/``; steps are pushed to ``<base>steps/<step>/``.
        ``SERVICE_ACCOUNT_EMAIL``: Cloud Tasks signs each push with an OIDC token for it.
        ``AUDIENCE``: the token's audience (default ``TARGET_BASE_URL``).
        ``SIGN_WITH_HMAC``: sign pushes with ``AUTH["HMAC_SECRET"]`` instead (the emulator,
            or pushers that cannot use OIDC).
        ``DISPATCH_DEADLINE``: seconds a push may take (default 25, below API Gateway's 30).
        ``EMULATOR_HOST``: ``host:port`` of a Cloud Tasks emulator (insecure gRPC).

    Task names are derived from (step, job, due second) behind a hashed prefix,
    so the same send made twice creates one task; ``AlreadyExists`` is success.
    """

    max_delay = MAX_SCHEDULE_SECONDS

    def __init__(self, options: dict[str, Any]):
        super().__init__(options)
        required = ("PROJECT", "LOCATION", "QUEUE", "TARGET_BASE_URL")
        missing = [key for key in required if not options.get(key)]
        if not options.get("SERVICE_ACCOUNT_EMAIL") and not options.get("SIGN_WITH_HMAC"):
            missing.append("SERVICE_ACCOUNT_EMAIL (or SIGN_WITH_HMAC)")
        if missing:
            raise ImproperlyConfigured(
                f"CONTAINER_MANAGER['DISPATCH']['OPTIONS']: CloudTasksBackend needs "
                f"{', '.join(missing)}"
            )
        self.base_url = options["TARGET_BASE_URL"].rstrip("/") + "/"
        project, location, queue = options["PROJECT"], options["LOCATION"], options["QUEUE"]
        self.queue_path = f"projects/{project}/locations/{location}/queues/{queue}"
        self._client = None
        self._client_lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The Cloud Tasks client, created once per process."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._build_client()
        return self._client

    def deliver(self, step: str, job_id: str, delay: float) -> None:
        from google.api_core.exceptions import AlreadyExists

        due = time.time() + delay
        try:
            self.client.create_task(parent=self.queue_path, task=self.task(step, job_id, due))
        except AlreadyExists:
            logger.debug("task for %s of job %s already exists", step, job_id)

    def deliver_many(self, messages: list[tuple[str, str, float]]) -> None:
        """Create the tasks concurrently (a sweep's hundreds must fit in one request)."""
        with ThreadPoolExecutor(max_workers=min(SEND_THREADS, len(messages) or 1)) as pool:
            list(pool.map(lambda message: self.deliver(*message), messages))

    def task(self, step: str, job_id: str, due: float) -> dict[str, Any]:
        """The task for one step, as ``create_task`` takes it."""
        from google.protobuf import duration_pb2, timestamp_pb2

        url = f"{self.base_url}steps/{step}/"
        body = json.dumps({"job_id": job_id, "step": step}).encode()
        headers = {"Content-Type": "application/json"}
        http_request: dict[str, Any] = {"http_method": "POST", "url": url, "body": body}
        if self.options.get("SIGN_WITH_HMAC"):
            # Signed for the moment it is due, so a delayed push is not too old on arrival.
            path = "/" + url.split("://", 1)[-1].split("/", 1)[1]
            headers.update(sign_request("POST", path, body, timestamp=due))
        else:
            http_request["oidc_token"] = {
                "service_account_email": self.options["SERVICE_ACCOUNT_EMAIL"],
                "audience": self.options.get("AUDIENCE") or self.base_url,
            }
        http_request["headers"] = headers
        schedule = timestamp_pb2.Timestamp()
        schedule.FromNanoseconds(int(due * 1e9))
        deadline = int(self.options.get("DISPATCH_DEADLINE", DEFAULT_DISPATCH_DEADLINE))
        return {
            "name": f"{self.queue_path}/tasks/{task_id(step, job_id, due)}",
            "http_request": http_request,
            "schedule_time": schedule,
            "dispatch_deadline": duration_pb2.Duration(seconds=deadline),
        }

    def _build_client(self) -> Any:
        from google.cloud import tasks_v2

        host = self.options.get("EMULATOR_HOST")
        if not host:
            return tasks_v2.CloudTasksClient()
        import grpc
        from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

        channel = grpc.insecure_channel(host)
        return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))


def task_id(step: str, job_id: str, due: float) -> str:
    """A task id for (step, job, due second), led by a hash so names spread over the keyspace.

    >>> task_id("check", "7a0e", 1700000000.4)
    '4e8750dfc94c-check-7a0e-1700000000'
    """
    stem = f"{step}-{job_id}-{int(due)}"
    return f"{hashlib.sha256(stem.encode()).hexdigest()[:12]}-{stem}"
