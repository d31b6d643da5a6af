"""Cloud Run completions: a Pub/Sub push of the execution's system log entry to events/cloudrun/.

OIDC as for the steps; the entry names the execution; duplicates and strangers change nothing.
"""

import base64
import json

import pytest
from django.urls import reverse

from container_manager.engine import steps
from container_manager.executors.factory import ExecutorFactory
from container_manager.models import ContainerJob, ExecutorHost
from tests.conftest import FAST_STEPS
from tests.fakes.cloudrun import JOB, PROJECT, REGION, cloudrun_fake  # noqa: F401 - fixture
from tests.push_support import push_settings

pytestmark = pytest.mark.django_db(transaction=True)

URL = reverse("container_manager:events-cloudrun")


@pytest.fixture
def pushes(settings, issuer):
    """Recording dispatch and auth trusting the local issuer (as the Pub/Sub push account)."""
    return push_settings(settings, issuer, PLATFORM_EVENTS=["cloudrun"])


@pytest.fixture
def ended(pushes, cloudrun_fake):  # noqa: F811 - the fixture imported above
    """A job whose Cloud Run execution has finished (the platform says so), still running here."""
    host = ExecutorHost.objects.create(
        name="cloudrun", executor_type="cloudrun", executor_config=cloudrun_fake.config()
    )
    job = ContainerJob.objects.create_job(
        image="busybox", command="sh -c 'echo hello'", docker_host=host
    )
    assert steps.launch(job.pk) == "launched"
    [check] = [m for m in pushes.take() if m[0] == "check"]
    # Events flow: the check only backs them up.
    assert check[2] == pytest.approx(FAST_STEPS["CHECK_DELAY_WITH_EVENTS"])
    job = ContainerJob.objects.get(pk=job.pk)
    executor = ExecutorFactory().get_executor(job)
    while executor.check_status(job.execution_id) == "running":
        pass  # the fake's execution ends after a few status reads
    return job


def log_entry(execution_name, job=JOB, resource_type="cloud_run_job"):
    """Cloud Run's system log entry for an execution that finished (a LogEntry, as JSON)."""
    return {
        "insertId": "abc123",
        "logName": f"projects/{PROJECT}/logs/run.googleapis.com%2Fvarlog%2Fsystem",
        "resource": {
            "type": resource_type,
            "labels": {"job_name": job, "location": REGION, "project_id": PROJECT},
        },
        "labels": {"run.googleapis.com/execution_name": execution_name},
        "textPayload": f"Execution {execution_name} has completed successfully.",
        "severity": "INFO",
        "timestamp": "2026-12-01T10:00:05.123456Z",
        "receiveTimestamp": "2026-12-01T10:00:05.456789Z",
    }


def envelope(entry, message_id="1001"):
    """A Pub/Sub push request body carrying ``entry`` (what the push subscription posts)."""
    data = base64.b64encode(json.dumps(entry).encode()).decode()
    return {
        "message": {
            "data": data,
            "messageId": message_id,
            "publishTime": "2026-12-01T10:00:06.000Z",
            "attributes": {"logging.googleapis.com/timestamp": "2026-12-01T10:00:05.123456Z"},
        },
        "subscription": f"projects/{PROJECT}/subscriptions/cm-cloudrun-events",
    }


def push(client, issuer, body, token=True):
    headers = {"Authorization": f"Bearer {issuer.token()}"} if token else {}
    raw = body if isinstance(body, bytes) else json.dumps(body)
    return client.post(URL, raw, content_type="application/json", headers=headers)


def short(job):
    return job.execution_id.rsplit("/", 1)[-1]


def test_a_completion_entry_harvests_the_job_and_a_duplicate_changes_nothing(
    client, issuer, ended, pushes
):
    response = push(client, issuer, envelope(log_entry(short(ended))))
    assert response.status_code == 200, response.content
    assert response.json() == {"execution": short(ended), "result": "completed"}
    done = ContainerJob.objects.get(pk=ended.pk)
    assert (done.status, done.exit_code, done.clean_output) == ("completed", 0, "hello\n")
    again = push(client, issuer, envelope(log_entry(short(ended)), message_id="1001"))
    assert again.json()["result"] == "unknown-execution"
    assert ContainerJob.objects.get(pk=ended.pk).completed_at == done.completed_at
    assert [m for m in pushes.take() if m[0] in ("check", "harvest")] == []


def test_pushes_without_a_token_are_refused_and_change_nothing(client, issuer, ended):
    response = push(client, issuer, envelope(log_entry(short(ended))), token=False)
    assert response.status_code == 401
    assert ContainerJob.objects.get(pk=ended.pk).status == "running"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        ({"message": {"data": "%%%"}}, "message.data"),
        ({"subscription": "s"}, "message"),
        (envelope({"resource": {"type": "cloud_run_job", "labels": {"location": REGION}}}),
         "resource.labels.job_name"),
    ],
)  # fmt: skip
def test_a_broken_envelope_is_a_400_naming_the_field(client, issuer, pushes, body, field):
    response = push(client, issuer, body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}:")


def test_entries_of_other_resources_and_executions_are_acknowledged(client, issuer, ended):
    other = push(client, issuer, envelope(log_entry("x", resource_type="cloud_run_revision")))
    assert (other.status_code, other.json()) == (200, {"result": "ignored"})
    unknown = push(client, issuer, envelope(log_entry(short(ended), job="another-job")))
    assert unknown.json()["result"] == "unknown-execution"
    assert ContainerJob.objects.get(pk=ended.pk).status == "running"
