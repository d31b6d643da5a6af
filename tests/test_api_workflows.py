"""The workflow API: submit a document (201, or a 400 naming node and field with nothing stored),
list, read and cancel; permissions as for jobs; another user's workflow answers like none.

Each answer is validated against the served OpenAPI document.
"""

import uuid

import pytest
from django.urls import reverse

from container_manager import dispatch
from container_manager.models import ContainerJob, JobDependency, Workflow
from tests.test_api import conforms
from tests.test_api_schedules import assert_hidden_like_unknown, call
from tests.test_owners_schedules import token, user_with
from tests.test_workflows import deliver_all

pytestmark = pytest.mark.django_db(transaction=True)

WORKFLOWS = reverse("container_manager:api-workflows")
SERVICE = "workflows-service-token"
JOBS = ("add_containerjob", "view_containerjob", "change_containerjob")


@pytest.fixture
def api(settings, recording, mock_host):
    """Secrets by name: alice and bob may do everything with jobs, viewer only view them."""
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [SERVICE]}
    users = {name: user_with(name, *JOBS) for name in ("alice", "bob")}
    users["viewer"] = user_with("viewer", "view_containerjob")
    return {"service": SERVICE, **{name: token(user) for name, user in users.items()}}


@pytest.fixture
def transport(api):
    """The recording backend of the settings ``api`` made: the test delivers its messages."""
    return dispatch.get_backend()


@pytest.fixture
def document(client):
    return client.get(reverse("container_manager:api-openapi")).json()


def one(workflow_id, cancel=False):
    name = "api-workflow-cancel" if cancel else "api-workflow"
    return reverse(f"container_manager:{name}", args=[workflow_id])


def spec(host, **extra):
    image = {"docker_image": "x", "command": "true", "host": host.name}
    return {
        "name": "etl",
        "nodes": {
            "extract": image,
            "transform": {**image, "depends_on": ["extract"], **extra},
            "load": {**image, "depends_on": ["transform"]},
        },
    }


def stored():
    return (Workflow.objects.count(), ContainerJob.objects.count(), JobDependency.objects.count())


def test_submit_read_list_and_run_to_completion(client, api, document, mock_host, transport):
    answer = call(client, "post", WORKFLOWS, api["alice"], spec(mock_host))
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert conforms(document, "Workflow", body)
    assert body["status"] == "pending" and body["node_count"] == 3
    nodes = {node["name"]: node for node in body["nodes"]}
    assert nodes["load"]["depends_on"] == ["transform"]
    job = call(client, "get", nodes["load"]["links"]["job"], api["alice"])
    assert job.json()["depends_on"] == [nodes["transform"]["job"]]
    deliver_all(transport)
    read = call(client, "get", one(body["id"]), api["alice"])
    assert read.status_code == 200 and conforms(document, "Workflow", read.json())
    assert read.json()["status"] == "completed"
    assert {node["status"] for node in read.json()["nodes"]} == {"completed"}
    listed = call(client, "get", WORKFLOWS, api["alice"])
    assert conforms(document, "WorkflowList", listed.json())
    assert [(w["id"], w["status"]) for w in listed.json()["workflows"]] == [
        (body["id"], "completed")
    ]
    assert call(client, "get", WORKFLOWS, api["bob"]).json() == {"workflows": []}
    assert len(call(client, "get", WORKFLOWS, api["service"]).json()["workflows"]) == 1


def test_a_bad_document_is_a_400_naming_node_and_field_and_stores_nothing(
    client, api, document, mock_host
):
    cases = [
        (spec(mock_host, memory_limit=10**9), "nodes.transform.memory_limit"),
        (spec(mock_host, depends_on=["nowhere"]), "nodes.transform.depends_on"),
        (spec(mock_host, depends_on=["load"]), "nodes"),  # transform <-> load
        ({"nodes": {"bad name": {"docker_image": "x"}}}, "nodes"),
        ({"name": "no nodes"}, "nodes"),
    ]
    for body, field in cases:
        answer = call(client, "post", WORKFLOWS, api["alice"], body)
        assert answer.status_code == 400, (field, answer.content)
        assert conforms(document, "Error", answer.json())
        assert answer.json()["fields"][field][0].startswith(f"{field}: ")
        assert stored() == (0, 0, 0)
    cycle = call(client, "post", WORKFLOWS, api["alice"], cases[2][0]).json()
    assert "transform -> load -> transform" in cycle["fields"]["nodes"][0]


def test_permissions_are_those_of_jobs(client, api, mock_host):
    assert call(client, "post", WORKFLOWS, api["viewer"], spec(mock_host)).status_code == 403
    made = call(client, "post", WORKFLOWS, api["alice"], spec(mock_host)).json()
    assert call(client, "get", WORKFLOWS, api["viewer"]).status_code == 200
    assert call(client, "post", one(made["id"], cancel=True), api["viewer"]).status_code == 403
    assert stored()[0] == 1


def test_another_users_workflow_answers_like_an_unknown_one(client, api, mock_host):
    made = call(client, "post", WORKFLOWS, api["alice"], spec(mock_host)).json()
    requests = [("get", one, None), ("post", lambda pk: one(pk, cancel=True), None)]
    assert_hidden_like_unknown(client, api["bob"], requests, made["id"], uuid.uuid4())
    assert call(client, "get", one("not-a-uuid"), api["bob"]).status_code == 404
    assert Workflow.objects.get().cancel_requested_at is None


def test_cancel_answers_202_then_409_once_ended(client, api, document, mock_host, transport):
    made = call(client, "post", WORKFLOWS, api["alice"], spec(mock_host)).json()
    answer = call(client, "post", one(made["id"], cancel=True), api["alice"])
    assert answer.status_code == 202 and conforms(document, "Workflow", answer.json())
    assert answer.json()["cancel_requested_at"] is not None
    deliver_all(transport)
    read = call(client, "get", one(made["id"]), api["alice"]).json()
    assert read["status"] == "cancelled"
    again = call(client, "post", one(made["id"], cancel=True), api["alice"])
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]


def test_an_idempotency_key_returns_the_first_workflow(client, api, mock_host):
    key = {"Idempotency-Key": "k1"}
    first = call(client, "post", WORKFLOWS, api["alice"], spec(mock_host), **key)
    again = call(client, "post", WORKFLOWS, api["alice"], spec(mock_host), **key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"] and stored()[0] == 1
    other = call(client, "post", WORKFLOWS, api["alice"], spec(mock_host, name="x"), **key)
    assert other.status_code == 409 and stored()[0] == 1


def test_a_users_token_is_held_to_its_quotas_for_every_row_of_the_document(
    client, api, settings, mock_host
):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "QUOTA_ROWS_PER_REQUEST": 5}
    body = spec(mock_host, array_size=3)  # extract 1 + transform 3 + 1 + load 1 = 6 rows
    answer = call(client, "post", WORKFLOWS, api["alice"], body)
    assert answer.status_code == 429 and answer.json()["quota"] == "rows_per_request"
    assert stored() == (0, 0, 0)
    assert call(client, "post", WORKFLOWS, api["service"], body).status_code == 201


def test_a_time_offset_postgresql_cannot_store_is_taken_as_utc(client, api, mock_host):
    """Python reads offsets up to 23:59; PostgreSQL stores 15:59 at most (a 500 the fuzzer met)."""
    body = spec(mock_host, run_after="2030-01-19T22:04:28-16:12")
    answer = call(client, "post", WORKFLOWS, api["alice"], body)
    assert answer.status_code == 201, answer.content
    job = ContainerJob.objects.get(workflow_node="transform")
    assert job.run_after.isoformat() == "2030-01-20T14:16:28+00:00"
    late = spec(mock_host, run_after="9999-12-31T23:00:00-05:00")
    answer = call(client, "post", WORKFLOWS, api["alice"], late)
    assert answer.status_code == 400 and "out of range" in str(answer.json()["fields"])
