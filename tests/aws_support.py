"""A moto server for the SQS tests, and a loop that plays Lambda's SQS event source against it.

The server runs in this process on a free port; boto3 reaches it over HTTP as it would AWS.
"""

import uuid

import pytest

from tests.conftest import FAST_STEPS, missing_service

REGION = "us-east-1"
SQS_BACKEND = "container_manager.dispatch.sqs.SQSBackend"


def start_moto_server():
    """Start a threaded moto server on 127.0.0.1; returns ``(server, endpoint_url)``."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        missing_service(f"moto[server] is not installed: {exc}")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def fake_aws_env(monkeypatch):
    """Credentials and region that only moto accepts, so nothing can reach real AWS."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def make_queue(endpoint_url):
    """A fresh standard queue; returns ``(client, queue_url, queue_arn)``."""
    import boto3

    client = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint_url)
    url = client.create_queue(QueueName=f"cm-steps-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return client, url, arn


def use_sqs(settings, endpoint_url, queue_url, **extra):
    """Point CONTAINER_MANAGER's dispatch at the queue."""
    settings.CONTAINER_MANAGER = {
        **FAST_STEPS,
        **extra,
        "DISPATCH": {
            "BACKEND": SQS_BACKEND,
            "OPTIONS": {"QUEUE_URL": queue_url, "REGION": REGION, "ENDPOINT_URL": endpoint_url},
        },
    }


def receive(client, queue_url, wait=1):
    """Up to 10 visible messages (attributes included), waiting up to ``wait`` seconds."""
    return client.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=wait,
        AttributeNames=["All"],
    ).get("Messages", [])


def lambda_event(messages, queue_arn):
    """The event Lambda's SQS event source hands the function for these messages."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def feed_lambda(client, queue_url, queue_arn, handler, done, rounds=60):
    """Play the event source: receive, call ``handler``, delete what succeeded, until ``done()``.

    Returns every message id the handler reported as failed (those are made visible again).
    """
    failed = []
    for _ in range(rounds):
        if done():
            return failed
        messages = receive(client, queue_url)
        if not messages:
            continue
        result = handler(lambda_event(messages, queue_arn), None)
        bad = {item["itemIdentifier"] for item in result["batchItemFailures"]}
        failed.extend(bad)
        for message in messages:
            if message["MessageId"] in bad:
                client.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    pytest.fail(f"jobs not finished after {rounds} rounds of SQS delivery")
