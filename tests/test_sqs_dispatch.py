"""The SQS dispatch backend against a moto server: message format, delays, the 15-minute limit.

Delays past what SQS can hold are not sent; the sweep finds that work in the rows.
"""

import json
import logging
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from container_manager import dispatch
from container_manager.dispatch.sqs import SQSBackend
from container_manager.engine import steps
from container_manager.models import ContainerJob
from functions.handlers import sqs_batch
from tests import aws_support as aws

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def moto_endpoint():
    server, endpoint = aws.start_moto_server()
    yield endpoint
    server.stop()


@pytest.fixture
def queue(moto_endpoint, monkeypatch):
    """``(client, url, arn)`` of a fresh queue on the moto server, with fake credentials set."""
    aws.fake_aws_env(monkeypatch)
    return aws.make_queue(moto_endpoint)


@pytest.fixture
def backend(queue, moto_endpoint):
    backend = SQSBackend({"QUEUE_URL": queue[1], "ENDPOINT_URL": moto_endpoint})
    yield backend
    backend.close()


def sent_params(backend):
    """Record the parameters of every SendMessage call the backend's client makes."""
    calls = []
    backend.client().meta.events.register(
        "provide-client-params.sqs.SendMessage", lambda params, **kw: calls.append(dict(params))
    )
    return calls


def test_one_message_per_step_with_the_contract_body(backend, queue):
    client, url, _ = queue
    backend.send("check", "42", 0)
    [message] = aws.receive(client, url)
    assert json.loads(message["Body"]) == {"step": "check", "job_id": "42"}


def test_delay_rides_on_delay_seconds_rounded_up(backend, queue):
    client, url, _ = queue
    calls = sent_params(backend)
    backend.send("check", "7", 3.2)
    assert calls[0]["DelaySeconds"] == 4
    assert aws.receive(client, url, wait=0) == []  # hidden until the delay passes
    # A long poll returns as soon as the message shows: no sleep, a generous bound.
    assert [json.loads(m["Body"])["job_id"] for m in aws.receive(client, url, wait=20)] == ["7"]


def test_delay_longer_than_sqs_holds_is_not_sent(backend, queue, caplog):
    client, url, _ = queue
    with caplog.at_level(logging.DEBUG, logger="container_manager.dispatch.sqs"):
        backend.send("launch", "9", 901)
    assert aws.receive(client, url, wait=0) == []
    assert "left to the sweep" in caplog.text


def test_send_many_batches_by_ten_and_skips_long_delays(backend, queue):
    client, url, _ = queue
    calls = []
    backend.client().meta.events.register(
        "provide-client-params.sqs.SendMessageBatch",
        lambda params, **kw: calls.append(len(params["Entries"])),
    )
    backend.send_many([("launch", str(n), 0) for n in range(23)] + [("check", "x", 1000)])
    assert calls == [10, 10, 3]
    received = set()
    while len(received) < 23:
        messages = aws.receive(client, url)
        assert messages, f"only {len(received)} of 23 messages arrived"
        received |= {json.loads(m["Body"])["job_id"] for m in messages}
    assert received == {str(n) for n in range(23)}


def test_a_refused_send_is_logged_not_raised(moto_endpoint, monkeypatch, caplog):
    aws.fake_aws_env(monkeypatch)
    missing = f"{moto_endpoint}/123456789012/no-such-queue"
    backend = SQSBackend({"QUEUE_URL": missing, "ENDPOINT_URL": moto_endpoint})
    backend.send("launch", "1", 0)
    assert "the sweep will resend it" in caplog.text
    backend.close()


def test_missing_queue_url_names_the_key():
    with pytest.raises(ImproperlyConfigured, match="QUEUE_URL"):
        SQSBackend({})


def test_long_backoff_is_left_to_the_sweep_which_finishes_the_job(
    settings, queue, moto_endpoint, make_mock_host
):
    """A retry 1000+ s away is not sent; once due, the sweep sends it and SQS carries the rest."""
    client, url, arn = queue
    aws.use_sqs(settings, moto_endpoint, url, RETRY_BACKOFF_BASE=2000, RETRY_BACKOFF_MAX=2000)
    host = make_mock_host(launch_failures=1)
    job = ContainerJob.objects.create_job(image="x", command="true", docker_host=host)
    [launch] = aws.receive(client, url)
    assert sqs_batch(aws.lambda_event([launch], arn)) == {"batchItemFailures": []}
    client.delete_message(QueueUrl=url, ReceiptHandle=launch["ReceiptHandle"])
    job.refresh_from_db()
    assert job.status == "pending" and job.run_after > timezone.now() + timedelta(seconds=900)
    assert aws.receive(client, url, wait=0) == []  # the retry's launch was not sent

    ContainerJob.objects.filter(pk=job.pk).update(run_after=timezone.now() - timedelta(seconds=5))
    assert steps.sweep()["launch"] == 1

    def finished():
        return ContainerJob.objects.get(pk=job.pk).status == "completed"

    aws.feed_lambda(client, url, arn, sqs_batch, finished)
    assert dispatch.get_backend().max_delay == 900
