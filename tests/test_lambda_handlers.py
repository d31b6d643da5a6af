"""The Lambda entry points: SQS batches fed from a moto server until jobs finish, the sweep.

A record that cannot be read or whose step raised is a batch item failure; the others succeed.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from container_manager.engine import steps
from container_manager.models import ContainerJob
from functions import handlers
from tests import aws_support as aws
from tests.support import submit

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def moto_endpoint():
    server, endpoint = aws.start_moto_server()
    yield endpoint
    server.stop()


@pytest.fixture
def queue(moto_endpoint, monkeypatch, settings):
    """``(client, url, arn)`` of a fresh moto queue that the SQS backend sends to."""
    aws.fake_aws_env(monkeypatch)
    client, url, arn = aws.make_queue(moto_endpoint)
    aws.use_sqs(settings, moto_endpoint, url)
    return client, url, arn


def record(message_id, body, arn="arn:aws:sqs:us-east-1:123456789012:q"):
    return {"messageId": message_id, "body": body, "eventSource": "aws:sqs", "eventSourceARN": arn}


def test_jobs_finish_through_sqs_messages_fed_to_the_lambda(queue, make_mock_host):
    client, url, arn = queue
    quick = make_mock_host(name="quick")
    slow = make_mock_host(name="slow", duration=1.5, exit_code=3)
    jobs = [submit(quick) for _ in range(4)] + [submit(slow) for _ in range(2)]

    def all_terminal():
        return not ContainerJob.objects.filter(
            pk__in=[j.pk for j in jobs], status__in=["pending", "launching", "running"]
        ).exists()

    failed = aws.feed_lambda(client, url, arn, handlers.sqs_batch, all_terminal)
    assert failed == []
    outcome = {
        j.pk: (j.status, j.exit_code)
        for j in ContainerJob.objects.filter(pk__in=[j.pk for j in jobs])
    }
    assert sorted(outcome.values()) == [("completed", 0)] * 4 + [("failed", 3)] * 2


def test_a_poisoned_message_fails_alone(queue, mock_host):
    client, url, arn = queue
    job = submit(mock_host)
    poison = {
        "not-json": "{oops",
        "unknown-step": json.dumps({"step": "explode", "job_id": str(job.pk)}),
        "no-job-id": json.dumps({"step": "launch"}),
        "not-an-object": json.dumps(["launch", str(job.pk)]),
    }
    ids = {
        client.send_message(QueueUrl=url, MessageBody=body)["MessageId"]: name
        for name, body in poison.items()
    }
    messages = []
    while len(messages) < 5:
        messages += aws.receive(client, url)
    result = handlers.sqs_batch(aws.lambda_event(messages, arn), None)
    failed = {item["itemIdentifier"] for item in result["batchItemFailures"]}
    assert {ids[m] for m in failed} == set(poison)
    assert ContainerJob.objects.get(pk=job.pk).status == "running"  # its launch went through


def test_a_step_that_raises_fails_only_its_record(recording, mock_host, monkeypatch):
    good, bad = submit(mock_host), submit(mock_host)
    recording.take()
    real_launch = steps.STEPS["launch"]

    def launch(job_id):
        if str(job_id) == str(bad.pk):
            raise RuntimeError("platform on fire")
        return real_launch(job_id)

    monkeypatch.setitem(steps.STEPS, "launch", launch)
    event = {
        "Records": [
            record("m-good", json.dumps({"step": "launch", "job_id": str(good.pk)})),
            record("m-bad", json.dumps({"step": "launch", "job_id": str(bad.pk)})),
        ]
    }
    assert handlers.sqs_batch(event, None) == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}
    assert ContainerJob.objects.get(pk=good.pk).status == "running"
    assert ContainerJob.objects.get(pk=bad.pk).status == "pending"


def test_an_empty_batch_has_no_failures(recording):
    assert handlers.sqs_batch({"Records": []}, None) == {"batchItemFailures": []}


def test_scheduled_sweep_resends_due_work(recording, mock_host):
    job = submit(mock_host)
    recording.take()  # the launch message is lost
    ContainerJob.objects.filter(pk=job.pk).update(created_at=job.created_at.replace(year=2000))
    scheduled = {"detail-type": "Scheduled Event", "source": "aws.events", "resources": []}
    assert handlers.sweep(scheduled, None)["launch"] == 1
    assert recording.take() == [("launch", str(job.pk), 0.0)]


def test_entry_points_load_no_cloud_sdk():
    """Cold starts pay only for what is used: importing the entry points loads no SDK."""
    code = (
        "import sys, os; os.environ['CM_DISPATCH_BACKEND'] = 'sqs';"
        "os.environ['DJANGO_SECRET_KEY'] = 'test';"
        "os.environ['CM_SQS_QUEUE_URL'] = 'https://sqs.invalid/1/q';"
        "import django; os.environ['DJANGO_SETTINGS_MODULE'] = 'functions.settings';"
        "django.setup(); import functions.handlers, container_manager.dispatch.sqs;"
        "from container_manager import dispatch; dispatch.get_backend();"
        "print(sorted(m for m in ('boto3', 'botocore', 'google.cloud', 'docker') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]"
