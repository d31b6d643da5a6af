"""The JSON API: submit, read status and logs, cancel; the OpenAPI document and its use.

Every response body is validated against the schema the API serves.
"""

import json
import re

import pytest
from django.urls import reverse
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from container_manager.models import ContainerJob, EnvironmentVariableTemplate, ExecutorHost

pytestmark = pytest.mark.django_db

TOKEN = "api-test-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(settings, recording):
    """The recording backend, with the test token accepted."""
    from container_manager import dispatch

    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [TOKEN]}
    return dispatch.get_backend()


@pytest.fixture
def document(client):
    return client.get(reverse("container_manager:api-openapi")).json()


def conforms(document, name, body):
    """Validate ``body`` against ``components.schemas[name]`` of the served document."""
    schema = {**document["components"]["schemas"][name], "components": document["components"]}
    OAS30Validator(schema).validate(body)
    return True


def submit(client, **payload):
    return client.post(
        reverse("container_manager:api-jobs"), json.dumps(payload),
        content_type="application/json", headers=BEARER,
    )  # fmt: skip


def test_openapi_document_is_valid_and_served(client, document):
    validate(document)
    assert document["servers"][0]["url"] == "http://testserver/cm/api"
    assert set(document["paths"]) == {
        "/jobs/", "/jobs/{job_id}/", "/jobs/{job_id}/logs/", "/jobs/{job_id}/cancel/",
        "/jobs/{job_id}/retry/", "/openapi.json",
        "/schedules/", "/schedules/{schedule_id}/", "/schedules/{schedule_id}/run/",
        "/webhooks/", "/webhooks/{webhook_id}/", "/webhooks/{webhook_id}/rotate/",
        "/workflows/", "/workflows/{workflow_id}/", "/workflows/{workflow_id}/cancel/",
        "/workflows/{workflow_id}/retry/",
    }  # fmt: skip


def test_every_operation_has_a_camel_case_operation_id(document):
    ids = [
        (path, method, operation.get("operationId"))
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    ]
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z]*)*", op_id or "") for *_, op_id in ids), ids
    assert len({op_id for *_, op_id in ids}) == len(ids)
    jobs = {(path, method): op_id for path, method, op_id in ids if path.startswith("/jobs/")}
    assert jobs == {
        ("/jobs/", "get"): "listJobs", ("/jobs/", "post"): "submitJob",
        ("/jobs/{job_id}/", "get"): "getJob", ("/jobs/{job_id}/logs/", "get"): "getJobLogs",
        ("/jobs/{job_id}/cancel/", "post"): "cancelJob",
        ("/jobs/{job_id}/retry/", "post"): "retryJob",
    }  # fmt: skip
    assert document["paths"]["/openapi.json"]["get"]["operationId"] == "getOpenApi"
    flows = {(path, method): op_id for path, method, op_id in ids if path.startswith("/workflows")}
    assert flows == {
        ("/workflows/", "get"): "listWorkflows", ("/workflows/", "post"): "submitWorkflow",
        ("/workflows/{workflow_id}/", "get"): "getWorkflow",
        ("/workflows/{workflow_id}/cancel/", "post"): "cancelWorkflow",
        ("/workflows/{workflow_id}/retry/", "post"): "retryWorkflow",
    }  # fmt: skip


def test_a_submit_with_the_old_image_name_is_told_the_new_one(client, api, document, mock_host):
    response = submit(client, image="alpine:3")
    assert response.status_code == 400 and conforms(document, "Error", response.json())
    assert response.json()["fields"] == {"image": ["image: renamed docker_image."]}
    assert not ContainerJob.objects.exists()
    assert "image" not in document["components"]["schemas"]["Job"]["properties"]


def test_every_documented_path_exists(client, api, document, mock_host):
    job = ContainerJob.objects.create_job(image="x")
    base = document["servers"][0]["url"].removeprefix("http://testserver")
    for path, operations in document["paths"].items():
        url = base + path.replace("{job_id}", str(job.pk))
        url = url.replace("{schedule_id}", "1").replace("{webhook_id}", "1")
        url = url.replace("{workflow_id}", str(job.pk))
        for method in operations:
            response = getattr(client, method)(url, headers=BEARER, content_type="application/json")
            assert response.status_code != 404 or "no such API path" not in response.json()["error"]


def test_submit_then_read_status_and_logs(
    client, api, document, mock_host, django_capture_on_commit_callbacks
):
    EnvironmentVariableTemplate.objects.create(name="base", environment_variables_text="A=1")
    with django_capture_on_commit_callbacks(execute=True):
        response = submit(
            client, docker_image="alpine:3", command="echo hi", name="api job", memory_limit=64,
            cpu_limit=0.5, timeout_seconds=60, environment_template="base",
            environment_vars={"B": "2"}, host="mock-host",
        )  # fmt: skip
    assert response.status_code == 201
    body = response.json()
    assert conforms(document, "Job", body)
    assert (body["status"], body["host"], body["docker_image"]) == (
        "pending",
        "mock-host",
        "alpine:3",
    )
    job = ContainerJob.objects.get(pk=body["id"])
    assert job.get_all_environment_variables() == {"A": "1", "B": "2"}
    assert api.take() == [("launch", body["id"], 0.0)]
    ContainerJob.objects.filter(pk=job.pk).update(
        status="completed", stdout_log="hi\n", exit_code=0
    )
    status = client.get(body["links"]["self"], headers=BEARER)
    assert status.status_code == 200 and conforms(document, "Job", status.json())
    assert status.json()["exit_code"] == 0
    logs = client.get(body["links"]["logs"], headers=BEARER)
    assert conforms(document, "JobLogs", logs.json())
    assert (logs.json()["clean_output"], logs.json()["truncated"]) == ("hi\n", False)
    listing = client.get(
        reverse("container_manager:api-jobs") + "?status=completed", headers=BEARER
    )
    assert [j["id"] for j in listing.json()["jobs"]] == [body["id"]]


def test_cancel(client, api, document, mock_host):
    job = ContainerJob.objects.create_job(image="x")
    url = reverse("container_manager:api-job-cancel", args=[job.pk])
    response = client.post(url, headers=BEARER)
    assert response.status_code == 202 and conforms(document, "Job", response.json())
    assert ContainerJob.objects.get(pk=job.pk).cancel_requested_at is not None
    ContainerJob.objects.filter(pk=job.pk).update(status="completed")
    again = client.post(url, headers=BEARER)
    assert again.status_code == 409 and conforms(document, "Error", again.json())


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"command": "true"}, "docker_image"),
        ({"docker_image": "x", "memory_limit": "lots"}, "memory_limit"),
        ({"docker_image": "x", "cpu_limit": 99}, "cpu_limit"),
        ({"docker_image": "x", "host": "nowhere"}, "host"),
        ({"docker_image": "x", "environment_vars": {"A": 1}}, "environment_vars"),
        ({"docker_image": "x", "environment_template": "missing"}, "environment_template"),
        ({"docker_image": "x", "run_after": "tomorrow"}, "run_after"),
        ({"docker_image": "x", "colour": "blue"}, "colour"),
    ],
)
def test_bad_submit_names_the_field_and_stores_nothing(
    client, api, document, mock_host, payload, field
):
    response = submit(client, **payload)
    assert response.status_code == 400
    assert conforms(document, "Error", response.json())
    assert field in response.json()["fields"]
    assert not ContainerJob.objects.exists()


def test_inactive_host_is_refused(client, api, mock_host):
    ExecutorHost.objects.filter(pk=mock_host.pk).update(is_active=False)
    response = submit(client, docker_image="x", host="mock-host")
    assert response.status_code == 400 and "inactive" in response.json()["fields"]["docker_host"][0]


def test_tokens(client, settings, recording, mock_host):
    url = reverse("container_manager:api-jobs")
    assert client.get(url, headers=BEARER).status_code == 403  # no tokens configured: closed
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [TOKEN]}
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get(url, headers=BEARER).status_code == 200
    assert not ContainerJob.objects.exists()


def test_unknown_job_and_bad_body(client, api, mock_host):
    missing = reverse("container_manager:api-job", args=["00000000-0000-0000-0000-000000000000"])
    assert client.get(missing, headers=BEARER).status_code == 404
    bad = client.post(
        reverse("container_manager:api-jobs"), "{", content_type="application/json", headers=BEARER
    )
    assert bad.status_code == 400


def test_submit_an_array_and_a_job_that_waits_for_it(client, api, document, mock_host):
    parent = submit(client, docker_image="x", array_size=3).json()
    assert conforms(document, "Job", parent)
    assert parent["array"]["size"] == 3 and parent["array"]["parent"] is None
    assert parent["array"]["counts"]["pending"] == 3
    merge = submit(client, docker_image="x", depends_on=[parent["id"]])
    assert merge.status_code == 201 and conforms(document, "Job", merge.json())
    assert merge.json()["depends_on"] == [parent["id"]]
    child = ContainerJob.objects.get(array_parent_id=parent["id"], array_index=1)
    ContainerJob.objects.filter(pk=child.pk).update(status="completed")
    status = client.get(parent["links"]["self"], headers=BEARER).json()
    assert conforms(document, "Job", status)
    assert (status["array"]["counts"]["pending"], status["array"]["counts"]["completed"]) == (2, 1)
    child_json = client.get(reverse("container_manager:api-job", args=[child.pk]), headers=BEARER)
    assert child_json.json()["array"] == {
        "size": 3, "index": 1, "parent": parent["id"], "max_parallel": None,
        "tolerated_failures": None,
    }  # fmt: skip
    listing = client.get(reverse("container_manager:api-jobs"), headers=BEARER).json()["jobs"]
    assert {j["id"]: j["depends_on"] for j in listing}[merge.json()["id"]] == [parent["id"]]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"depends_on": ["00000000-0000-0000-0000-000000000000"]}, "no job"),
        ({"depends_on": "00000000-0000-0000-0000-000000000000"}, "must be an array"),
        ({"array_size": 1}, "must be between 2 and 10000"),
        ({"array_size": True}, "must be an integer"),
    ],
)
def test_bad_workflow_submit_names_the_field(client, api, document, mock_host, payload, message):
    response = submit(client, docker_image="x", **payload)
    assert response.status_code == 400 and conforms(document, "Error", response.json())
    [field] = payload
    assert message in response.json()["fields"][field][0]
    assert not ContainerJob.objects.exists()
