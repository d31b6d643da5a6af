"""Webhook deliveries to a real HTTP server on 127.0.0.1, and the job signals behind them.

The recording backend delivers nothing: the test runs the job's steps and the notify steps itself.
"""

import http.server
import json
import queue
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse

from container_manager import dispatch, signals
from container_manager.engine import delivery as delivery_step
from container_manager.engine import outbox, steps
from container_manager.engine.sweep import SWEEP_GRACE_SECONDS
from container_manager.models import ContainerJob
from container_manager.models.webhooks import WebhookDelivery, WebhookEndpoint
from container_manager.web.auth import sign_request
from functions import handlers
from tests import aws_support as aws
from tests.push_support import HMAC_SECRET

pytestmark = pytest.mark.django_db

SECRET = "hook-secret"
#: The receivers listen on loopback, which the outbound guard refuses unless allowed.
LOOPBACK_ALLOWED = {"WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"]}


class Receiver:
    """An HTTP server on ``host`` answering each POST with the next scripted reply (default 200).

    A reply of ``None`` hangs until ``release`` is set; ``"drip"`` sends a status line,
    then a header line every ``drip_every`` seconds, ``drip_lines`` of them, and never
    ends the headers (``dripped`` counts the lines sent).
    """

    def __init__(self, host="127.0.0.1"):
        self.requests = []
        self.replies = queue.Queue()
        self.release = threading.Event()
        self.drip_every, self.drip_lines, self.dripped = 0.2, 30, 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.requests.append((self.path, self.headers, body))
                code, headers = (
                    owner.replies.get_nowait() if not owner.replies.empty() else (200, {})
                )
                if code is None:
                    owner.release.wait(30)
                    return
                if code == "drip":
                    self.drip()
                    return
                self.send_response(code)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def drip(self):
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                for n in range(owner.drip_lines):
                    if owner.release.wait(owner.drip_every):
                        return
                    try:
                        self.wfile.write(f"X-Drip-{n}: {n}\r\n".encode())
                        self.wfile.flush()
                    except OSError:
                        return  # the client gave up
                    owner.dripped += 1

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def hooks(recording, settings):
    settings.CONTAINER_MANAGER = {
        **settings.CONTAINER_MANAGER,
        "WEBHOOK_BACKOFF_BASE": 0.0,
        "WEBHOOK_TIMEOUT_SECONDS": 5.0,
        **LOOPBACK_ALLOWED,
    }
    return dispatch.get_backend()  # the settings change made a new one


@pytest.fixture
def commits(django_capture_on_commit_callbacks):
    """Run the on-commit callbacks of the block, as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def run_job(hooks, commits):
    return lambda host: _run_job(host, commits)


def _run_job(host, commits):
    """Submit a job and run its steps as if each committed; return it and its notify messages."""
    with commits():
        job = ContainerJob.objects.create_job(image="x", docker_host=host)
    with commits():
        steps.launch(job.pk)
    with commits():
        steps.check(job.pk)
    notifies = [m for m in dispatch.get_backend().take() if m[0] == "notify"]
    return ContainerJob.objects.get(pk=job.pk), notifies


def test_delivery_is_signed_retried_after_503_and_keeps_its_id(
    hooks, run_job, commits, receiver, mock_host
):
    endpoint = WebhookEndpoint.objects.create(
        url=receiver.url, secret=SECRET, events=["job.completed"]
    )
    receiver.replies.put((503, {}))
    job, notifies = run_job(mock_host)
    assert job.status == "completed"  # the job finished before any delivery was tried
    (delivery,) = WebhookDelivery.objects.filter(job=job)
    assert notifies == [("notify", str(delivery.pk), 0.0)]
    with commits():
        assert steps.run_step("notify", delivery.pk) == "retrying"
    retry = hooks.take()
    assert [m[0] for m in retry] == ["notify"] and retry[0][1] == str(delivery.pk)
    assert steps.run_step("notify", delivery.pk) == "delivered"
    assert steps.run_step("notify", delivery.pk) == "nothing-to-do"  # a duplicate message
    assert len(receiver.requests) == 2
    ids = {headers[delivery_step.DELIVERY_HEADER] for _, headers, _ in receiver.requests}
    assert ids == {str(delivery.pk)}
    for _, headers, body in receiver.requests:
        stamp, signature = (
            headers[delivery_step.TIMESTAMP_HEADER],
            headers[delivery_step.SIGNATURE_HEADER],
        )
        assert delivery_step.verify(SECRET, stamp, body, signature)
        assert not delivery_step.verify("wrong", stamp, body, signature)
        document = json.loads(body)
        assert document["event"] == "job.completed" and document["delivery_id"] == str(delivery.pk)
        assert document["job"]["id"] == str(job.pk) and document["job"]["exit_code"] == 0
        # The image under the model's name, as in the job API's JSON.
        assert document["job"]["docker_image"] == job.docker_image
        assert "image" not in document["job"]
    row = WebhookDelivery.objects.get(pk=delivery.pk)
    assert (row.state, row.attempts, row.status_code, row.error) == ("delivered", 2, 200, "")
    assert [a["status_code"] for a in row.history] == [503, 200]
    assert endpoint.deliveries.count() == 1


def test_events_follow_the_endpoint_and_each_is_made_once(hooks, run_job, receiver, make_mock_host):
    every = WebhookEndpoint.objects.create(url=receiver.url, secret=SECRET)
    WebhookEndpoint.objects.create(url=receiver.url, events=["job.completed"])
    WebhookEndpoint.objects.create(url=receiver.url, active=False)
    job, notifies = run_job(make_mock_host(exit_code=2))
    assert job.status == "failed"
    events = Counter(WebhookDelivery.objects.values_list("endpoint_id", "event"))
    assert events == {(every.pk, "job.started"): 1, (every.pk, "job.failed"): 1}
    outbox.write(job, "failed")  # the event again
    assert WebhookDelivery.objects.count() == 2
    assert len(notifies) == 2


def test_redirect_to_another_host_is_not_followed(hooks, run_job, receiver, mock_host):
    WebhookEndpoint.objects.create(url=receiver.url, events=["job.completed"])
    elsewhere = f"http://localhost:{receiver.port}/elsewhere"
    receiver.replies.put((307, {"Location": elsewhere}))
    job, _ = run_job(mock_host)
    delivery = WebhookDelivery.objects.get(job=job)
    assert steps.run_step("notify", delivery.pk) == "failed"
    assert [path for path, _, _ in receiver.requests] == ["/hook"]
    assert "another host" in WebhookDelivery.objects.get(pk=delivery.pk).error


def test_same_host_redirect_is_followed_with_the_same_body(hooks, run_job, receiver, mock_host):
    WebhookEndpoint.objects.create(url=receiver.url, events=["job.completed"])
    receiver.replies.put((308, {"Location": "/moved"}))
    job, _ = run_job(mock_host)
    delivery = WebhookDelivery.objects.get(job=job)
    assert steps.run_step("notify", delivery.pk) == "delivered"
    assert [path for path, _, _ in receiver.requests] == ["/hook", "/moved"]
    assert receiver.requests[0][2] == receiver.requests[1][2]


def test_client_error_fails_without_retry_and_dead_receiver_is_retried(
    hooks, run_job, receiver, mock_host
):
    WebhookEndpoint.objects.create(url=receiver.url, events=["job.completed"])
    receiver.replies.put((404, {}))
    job, _ = run_job(mock_host)
    delivery = WebhookDelivery.objects.get(job=job)
    assert steps.run_step("notify", delivery.pk) == "failed"
    receiver.close()
    dead = WebhookEndpoint.objects.create(url=receiver.url, events=["job.completed"])
    job, _ = run_job(mock_host)
    delivery = WebhookDelivery.objects.get(job=job, endpoint=dead)
    assert steps.run_step("notify", delivery.pk) == "retrying"
    row = WebhookDelivery.objects.get(pk=delivery.pk)
    assert row.status_code is None and row.error and row.attempts == 1


def test_a_receiver_that_never_answers_times_out_and_is_retried(
    hooks, run_job, receiver, mock_host, settings
):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "WEBHOOK_TIMEOUT_SECONDS": 0.3}
    WebhookEndpoint.objects.create(url=receiver.url, events=["job.completed"])
    receiver.replies.put((None, {}))
    job, _ = run_job(mock_host)
    delivery = WebhookDelivery.objects.get(job=job)
    assert steps.run_step("notify", delivery.pk) == "retrying"
    row = WebhookDelivery.objects.get(pk=delivery.pk)
    assert row.status_code is None and "timed out" in row.error
    receiver.release.set()
    assert steps.run_step("notify", delivery.pk) == "delivered"
    sent = [headers[delivery_step.DELIVERY_HEADER] for _, headers, _ in receiver.requests]
    assert sent == [str(delivery.pk)] * 2


def test_attempts_stop_at_the_limit(hooks, run_job, receiver, mock_host, settings):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "WEBHOOK_MAX_ATTEMPTS": 3}
    WebhookEndpoint.objects.create(url=receiver.url, events=["job.completed"])
    for _ in range(5):
        receiver.replies.put((429, {}))
    job, _ = run_job(mock_host)
    delivery = WebhookDelivery.objects.get(job=job)
    outcomes = [steps.run_step("notify", delivery.pk) for _ in range(4)]
    assert outcomes == ["retrying", "retrying", "failed", "nothing-to-do"]
    assert len(receiver.requests) == 3


def test_a_receiver_that_drips_its_headers_is_cut_off_at_the_timeout(
    hooks, run_job, receiver, mock_host, settings
):
    """Each header line comes within the timeout, the whole answer never does."""
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "WEBHOOK_TIMEOUT_SECONDS": 0.5}
    WebhookEndpoint.objects.create(url=receiver.url, events=["job.completed"])
    receiver.replies.put(("drip", {}))
    job, _ = run_job(mock_host)
    delivery = WebhookDelivery.objects.get(job=job)
    started = time.monotonic()
    assert steps.run_step("notify", delivery.pk) == "retrying"
    took = time.monotonic() - started
    # The drip lasts 6 s (30 lines, one per 0.2 s); the attempt ends at 0.5 s, plus slack.
    assert took < 3.0, f"the attempt took {took:.1f} s"
    row = WebhookDelivery.objects.get(pk=delivery.pk)
    assert row.status_code is None and "timed out" in row.error and row.duration_ms < 3000
    assert 0 < receiver.dripped < receiver.drip_lines


@pytest.mark.django_db(transaction=True)
def test_an_event_survives_a_crash_right_after_its_move_commits(
    hooks, receiver, mock_host, clock, monkeypatch
):
    """The final move commits, then the process dies before any post-commit callback runs.

    The delivery rows were written by the move itself, so the sweep sends them.
    """
    WebhookEndpoint.objects.create(url=receiver.url, secret=SECRET)
    job = ContainerJob.objects.create_job(image="x", docker_host=mock_host)
    assert steps.run_step("launch", job.pk) == "launched"
    with monkeypatch.context() as crash:
        crash.setattr(transaction, "on_commit", lambda *args, **kwargs: None)
        assert steps.run_step("check", job.pk) == "completed"
    assert ContainerJob.objects.get(pk=job.pk).status == "completed"  # committed
    clock.advance(SWEEP_GRACE_SECONDS + 1)
    steps.sweep()
    messages = [m for m in hooks.take() if m[0] == "notify"]  # the launch's hint, the sweep's
    for _, delivery_id, _ in messages:
        steps.run_step("notify", delivery_id)
    events = Counter(headers[delivery_step.EVENT_HEADER] for _, headers, _ in receiver.requests)
    assert events == {"job.started": 1, "job.completed": 1}
    states = set(WebhookDelivery.objects.filter(job=job).values_list("state", flat=True))
    assert states == {"delivered"}


class Crash(Exception):
    """The process running a notify step died after its request, before recording it."""


def test_attempts_cut_off_by_crashes_stop_at_the_limit(
    hooks, run_job, commits, receiver, mock_host, clock, monkeypatch, settings
):
    """Each attempt is claimed and sent, and its process dies before the answer is recorded."""
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "WEBHOOK_MAX_ATTEMPTS": 3}
    WebhookEndpoint.objects.create(url=receiver.url, events=["job.completed"])
    job, _ = run_job(mock_host)
    delivery = WebhookDelivery.objects.get(job=job)

    def crash(*args, **kwargs):
        raise Crash

    monkeypatch.setattr(delivery_step, "_record", crash)
    outcomes = []
    for _ in range(6):
        clock.advance(600)  # past the lease of an attempt that never ended
        with commits():
            steps.sweep()
        for _, delivery_id, _ in dispatch.get_backend().take():
            try:
                outcomes.append(steps.run_step("notify", delivery_id))
            except Crash:
                outcomes.append("crashed")
    assert outcomes == ["crashed"] * 3 + ["failed"]
    assert len(receiver.requests) == 3
    row = WebhookDelivery.objects.get(pk=delivery.pk)
    assert (row.state, row.attempts) == ("failed", 3)
    assert "WEBHOOK_MAX_ATTEMPTS" in row.error


def test_sweep_resends_deliveries_that_are_due(hooks, run_job, commits, receiver, mock_host):
    WebhookEndpoint.objects.create(url=receiver.url, events=["job.completed"])
    job, _ = run_job(mock_host)
    delivery = WebhookDelivery.objects.get(job=job)
    # The notify message was lost: the row is all the sweep needs.
    with commits():
        sent = steps.sweep(now=delivery.next_attempt_at + timedelta(seconds=5))
    assert sent["notify"] == 1
    assert ("notify", str(delivery.pk), 0.0) in hooks.take()


def test_step_endpoint_accepts_notify(hooks, run_job, receiver, mock_host, client, settings):
    settings.CONTAINER_MANAGER = {
        **settings.CONTAINER_MANAGER,
        "AUTH": {"HMAC_SECRET": HMAC_SECRET},
    }
    WebhookEndpoint.objects.create(url=receiver.url, events=["job.completed"])
    job, _ = run_job(mock_host)
    delivery = WebhookDelivery.objects.get(job=job)
    url = reverse("container_manager:step", args=["notify"])
    body = json.dumps({"job_id": str(delivery.pk)}).encode()
    response = client.post(
        url,
        body,
        content_type="application/json",
        headers=sign_request("POST", url, body, secret=HMAC_SECRET),
    )
    assert response.status_code == 200 and response.json()["result"] == "delivered"


def test_only_http_urls_and_known_events():
    with pytest.raises(ValidationError) as caught:
        WebhookEndpoint(url="file:///etc/passwd").full_clean()
    assert "url" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        WebhookEndpoint(url="https://example.com/h", events=["job.exploded"]).full_clean()
    assert "events" in caught.value.message_dict


def test_signals_are_sent_once_per_move_even_when_messages_repeat(
    recording, mock_host, django_capture_on_commit_callbacks
):
    seen = []

    def record(sender, job, status, **kwargs):
        seen.append((job.pk, status))

    signals.job_started.connect(record)
    signals.job_finished.connect(record)
    try:
        job = ContainerJob.objects.create_job(image="x", docker_host=mock_host)
        with django_capture_on_commit_callbacks(execute=True):
            for _ in range(2):
                steps.launch(job.pk)
        with django_capture_on_commit_callbacks(execute=True):
            for _ in range(2):
                steps.check(job.pk)
                steps.harvest(job.pk)
    finally:
        signals.job_started.disconnect(record)
        signals.job_finished.disconnect(record)
    assert seen == [(job.pk, "running"), (job.pk, "completed")]


@pytest.fixture(scope="module")
def moto_endpoint():
    server, endpoint = aws.start_moto_server()
    yield endpoint
    server.stop()


@pytest.mark.django_db(transaction=True)
def test_deliveries_travel_through_sqs_to_the_lambda(
    moto_endpoint, monkeypatch, settings, receiver, mock_host
):
    aws.fake_aws_env(monkeypatch)
    client, url, arn = aws.make_queue(moto_endpoint)
    aws.use_sqs(settings, moto_endpoint, url)
    settings.CONTAINER_MANAGER = {
        **settings.CONTAINER_MANAGER,
        "WEBHOOK_BACKOFF_BASE": 0.0,
        **LOOPBACK_ALLOWED,
    }
    WebhookEndpoint.objects.create(url=receiver.url, secret=SECRET)
    receiver.replies.put((503, {}))
    job = ContainerJob.objects.create_job(image="x", docker_host=mock_host)

    def delivered():
        return WebhookDelivery.objects.filter(job=job, state="delivered").count() == 2

    assert aws.feed_lambda(client, url, arn, handlers.sqs_batch, delivered) == []
    assert ContainerJob.objects.get(pk=job.pk).status == "completed"
    sent = Counter(headers[delivery_step.DELIVERY_HEADER] for _, headers, _ in receiver.requests)
    ids = {str(pk) for pk in WebhookDelivery.objects.filter(job=job).values_list("pk", flat=True)}
    assert set(sent) == ids and sorted(sent.values()) == [1, 2]  # the 503 was retried
