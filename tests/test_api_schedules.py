"""The schedule API in full: create, read, change (enable/disable), delete and run one now.

Each answer is validated against the served OpenAPI document; ids the caller may not see
answer like unknown ones; the recording backend delivers nothing, so jobs stay pending.
"""

import json

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from container_manager.models import ContainerJob, EnvironmentVariableTemplate, JobSchedule
from container_manager.rules import status as st
from container_manager.rules.secrets import MASK
from tests.test_api import conforms
from tests.test_owners_schedules import ORDINARY, bearer, token, user_with

pytestmark = pytest.mark.django_db

SCHEDULES = reverse("container_manager:api-schedules")
SERVICE = "schedules-service-token"
EDITOR = (*ORDINARY, "change_jobschedule", "delete_jobschedule")


@pytest.fixture
def api(settings, recording, mock_host):
    """alice and bob with every schedule permission; ``{name: secret}`` with the service's."""
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [SERVICE]}
    users = {name: user_with(name, *EDITOR) for name in ("alice", "bob")}
    return {"service": SERVICE, **{name: token(user) for name, user in users.items()}}


@pytest.fixture
def document(client):
    return client.get(reverse("container_manager:api-openapi")).json()


def url(schedule_id, run=False):
    return reverse(f"container_manager:api-schedule{'-run' if run else ''}", args=[schedule_id])


def call(client, method, path, secret, body=None, **headers):
    data = json.dumps(body) if body is not None else ""
    send = getattr(client, method)
    return send(path, data, content_type="application/json", headers={**bearer(secret), **headers})


def assert_hidden_like_unknown(client, secret, requests, hidden, unknown):
    """Each ``(method, path of an id, body)`` answers ``hidden`` with the 404 of ``unknown``."""
    for method, path, body in requests:
        answers = [call(client, method, path(pk), secret, body) for pk in (hidden, unknown)]
        assert [answer.status_code for answer in answers] == [404, 404]
        hidden_answer, unknown_answer = (answer.content for answer in answers)
        assert hidden_answer.replace(str(hidden).encode(), b"ID") == unknown_answer.replace(
            str(unknown).encode(), b"ID"
        )


def create(client, secret, **fields):
    body = {"name": "nightly", "cron": "@daily", "docker_image": "alpine:3", **fields}
    response = call(client, "post", SCHEDULES, secret, body)
    assert response.status_code == 201, response.content
    return response.json()


def test_create_read_change_and_delete(client, api, document, mock_host):
    made = create(client, api["alice"], command="echo hi", host=mock_host.name, memory_limit=64)
    assert conforms(document, "Schedule", made)
    assert (made["docker_image"], made["host"], made["memory_limit"]) == (
        "alpine:3",
        "mock-host",
        64,
    )
    read = call(client, "get", url(made["id"]), api["alice"])
    assert read.status_code == 200 and read.json() == made
    changed = call(client, "patch", url(made["id"]), api["alice"], {"command": "echo bye"})
    assert changed.status_code == 200 and conforms(document, "Schedule", changed.json())
    assert changed.json() == {
        **made,
        "command": "echo bye",
        "updated_at": changed.json()["updated_at"],
    }
    row = JobSchedule.objects.get(pk=made["id"])
    assert (row.command, row.docker_image, row.memory_limit) == ("echo bye", "alpine:3", 64)
    gone = call(client, "delete", url(made["id"]), api["alice"])
    assert (gone.status_code, gone.content) == (204, b"")
    assert not JobSchedule.objects.exists()
    missing = call(client, "get", url(made["id"]), api["alice"])
    assert missing.status_code == 404 and conforms(document, "Error", missing.json())


def test_enable_and_disable_are_a_patch_of_enabled(client, api):
    made = create(client, api["alice"])
    off = call(client, "patch", url(made["id"]), api["alice"], {"enabled": False}).json()
    assert (off["enabled"], off["next_run_at"]) == (False, None)
    on = call(client, "patch", url(made["id"]), api["alice"], {"enabled": True}).json()
    assert on["enabled"] and on["next_run_at"] == made["next_run_at"]
    assert JobSchedule.objects.get().next_run_at.isoformat() == made["next_run_at"]


@pytest.mark.parametrize("method", ["post", "patch"])
def test_image_is_renamed_docker_image(client, api, document, method):
    made = create(client, api["alice"])
    path = SCHEDULES if method == "post" else url(made["id"])
    body = {"name": "other", "cron": "@daily", "image": "x"}
    response = call(client, method, path, api["alice"], body)
    assert response.status_code == 400 and conforms(document, "Error", response.json())
    assert response.json()["fields"] == {"image": ["image: renamed docker_image"]}
    assert list(JobSchedule.objects.values_list("name", "docker_image")) == [
        ("nightly", "alpine:3")
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "every day"}, "cron"),
        ({"timezone": "Nowhere/City"}, "timezone"),
        ({"memory_limit": 10**9}, "memory_limit"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"docker_image": None}, "docker_image"),
        ({"docker_image": ""}, "docker_image"),
        ({"catchup": "2"}, "catchup"),
        ({"enabled": "no"}, "enabled"),
        ({"host": "nowhere"}, "host"),
        ({"environment_template": "missing"}, "environment_template"),
        ({"environment_vars": {"1BAD": "x"}}, "environment_vars"),
        ({"name": "taken"}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"owner": 1}, "owner"),
        ({"next_run_at": "2030-01-01T00:00:00Z"}, "next_run_at"),
    ],
)
def test_a_patch_is_checked_as_a_create_and_names_the_field(client, api, document, body, field):
    create(client, api["alice"], name="taken")
    made = create(client, api["alice"])
    response = call(client, "patch", url(made["id"]), api["alice"], body)
    assert response.status_code == 400, response.content
    assert conforms(document, "Error", response.json())
    assert list(response.json()["fields"]) == [field]
    assert response.json()["fields"][field][0].startswith(f"{field}: ")
    assert call(client, "get", url(made["id"]), api["alice"]).json() == made


def test_a_patch_writes_only_the_fields_it_names(client, api, monkeypatch):
    made = create(client, api["alice"])
    real = JobSchedule.full_clean

    def meanwhile(schedule, *args, **kwargs):  # another request changes the command now
        JobSchedule.objects.filter(pk=schedule.pk).update(command="changed meanwhile")
        return real(schedule, *args, **kwargs)

    monkeypatch.setattr(JobSchedule, "full_clean", meanwhile)
    assert call(client, "patch", url(made["id"]), api["alice"], {"catchup": 3}).status_code == 200
    row = JobSchedule.objects.get()
    assert (row.catchup, row.command) == (3, "changed meanwhile")


def test_no_variable_value_is_answered_and_a_masked_one_keeps_its_value(client, api):
    made = create(client, api["alice"], environment_vars={"API_TOKEN": "s3cret", "MODE": "a"})
    assert made["environment_vars"] == {"API_TOKEN": MASK, "MODE": MASK}
    assert "s3cret" not in json.dumps(made)
    body = {"environment_vars": {**made["environment_vars"], "MODE": "b", "NEW": "c"}}
    changed = call(client, "patch", url(made["id"]), api["alice"], body)
    assert changed.json()["environment_vars"] == {"API_TOKEN": MASK, "MODE": MASK, "NEW": MASK}
    assert JobSchedule.objects.get().override_environment == "API_TOKEN=s3cret\nMODE=b\nNEW=c"
    forged = call(client, "patch", url(made["id"]), api["alice"], {"environment_vars": {"X": MASK}})
    assert list(forged.json()["fields"]) == ["environment_vars"]
    assert "X holds the mask" in forged.json()["fields"]["environment_vars"][0]
    dropped = call(client, "patch", url(made["id"]), api["alice"], {"environment_vars": None})
    assert dropped.json()["environment_vars"] == {}
    assert JobSchedule.objects.get().override_environment == ""


def test_another_users_schedule_answers_like_an_unknown_one(client, api, settings):
    theirs = create(client, api["alice"])
    unknown = theirs["id"] + 1000
    requests = [
        ("get", url, None),
        ("patch", url, {"command": "rm -rf /"}),
        ("delete", url, None),
        ("post", lambda pk: url(pk, run=True), None),
    ]
    assert_hidden_like_unknown(client, api["bob"], requests, theirs["id"], unknown)
    assert call(client, "get", SCHEDULES, api["bob"]).json() == {"schedules": []}
    assert call(client, "get", url(theirs["id"]), api["alice"]).json() == theirs
    assert not ContainerJob.objects.exists()
    assert call(client, "get", url(theirs["id"]), SERVICE).json() == theirs


@pytest.mark.parametrize("text", ["abc", "-1", "9" * 18, "9" * 30, "１"])
def test_an_id_that_is_no_key_is_a_404(client, api, text):
    assert call(client, "get", url(text), api["alice"]).status_code == 404


@pytest.mark.parametrize(
    ("method", "run", "lacking"),
    [
        ("get", False, "view_jobschedule"),
        ("patch", False, "change_jobschedule"),
        ("patch", False, "add_containerjob"),
        ("delete", False, "delete_jobschedule"),
        ("post", True, "change_jobschedule"),
        ("post", True, "add_containerjob"),
    ],
)
def test_each_action_needs_its_permissions(client, api, document, method, run, lacking):
    made = create(client, api["alice"])
    alice = JobSchedule.objects.get().owner
    alice.user_permissions.remove(Permission.objects.get(codename=lacking))
    body = {"command": "x"} if method == "patch" else None
    response = call(client, method, url(made["id"], run), api["alice"], body)
    assert response.status_code == 403 and conforms(document, "Error", response.json())
    assert lacking.split("_", 1)[0] in response.json()["error"]
    assert JobSchedule.objects.get().command == ""
    assert not ContainerJob.objects.exists()


def test_run_now_makes_a_job_as_the_owner(client, api, document, mock_host):
    made = create(client, api["alice"], command="echo now", host=mock_host.name)
    response = call(client, "post", url(made["id"], run=True), api["alice"])
    assert response.status_code == 201, response.content
    body = response.json()
    assert conforms(document, "Job", body)
    job = ContainerJob.objects.get()
    assert body["id"] == str(job.pk) and body["command"] == "echo now"
    assert job.created_by.username == "alice"
    assert job.executor_metadata["schedule"]["manual"] is True
    read = client.get(
        reverse("container_manager:api-job", args=[job.pk]), headers=bearer(api["alice"])
    )
    assert read.json() == body
    assert JobSchedule.objects.get().last_job_id == job.pk


def test_run_now_with_a_key_makes_one_job(client, api):
    made = create(client, api["alice"])
    other = create(client, api["alice"], name="other")
    key = {"Idempotency-Key": "run-1"}
    first = call(client, "post", url(made["id"], run=True), api["alice"], **key)
    again = call(client, "post", url(made["id"], run=True), api["alice"], **key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    elsewhere = call(client, "post", url(other["id"], run=True), api["alice"], **key)
    assert elsewhere.status_code == 409 and "idempotency_key" in elsewhere.json()["fields"]
    assert ContainerJob.objects.count() == 1


def test_run_now_that_makes_no_job_is_a_409_that_changes_nothing(client, api, document):
    made = create(client, api["alice"], overlap="skip")
    assert call(client, "post", url(made["id"], run=True), api["alice"]).status_code == 201
    before = JobSchedule.objects.get()
    refused = call(client, "post", url(made["id"], run=True), api["alice"])
    assert refused.status_code == 409 and conforms(document, "Error", refused.json())
    assert "still live" in refused.json()["error"]
    assert ContainerJob.objects.count() == 1
    assert JobSchedule.objects.get().last_outcome == before.last_outcome
    ContainerJob.objects.update(status=st.COMPLETED)
    assert call(client, "post", url(made["id"], run=True), api["alice"]).status_code == 201


def test_run_now_is_held_to_the_callers_active_jobs_quota(client, api, settings):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "QUOTA_ACTIVE_JOBS": 1}
    made = create(client, api["alice"])
    assert call(client, "post", url(made["id"], run=True), api["alice"]).status_code == 201
    over = call(client, "post", url(made["id"], run=True), api["alice"])
    assert over.status_code == 429 and over.json()["quota"] == "active_jobs"
    assert call(client, "post", url(made["id"], run=True), SERVICE).status_code == 201
    assert ContainerJob.objects.count() == 2


def test_listing_costs_the_same_statements_for_one_schedule_or_many(client, api, mock_host):
    EnvironmentVariableTemplate.objects.create(name="base", environment_variables_text="A=1")
    fields = {"host": mock_host.name, "environment_template": "base"}

    def listing():
        with CaptureQueriesContext(connection) as captured:
            response = call(client, "get", SCHEDULES, api["alice"])
        return len(response.json()["schedules"]), len(captured.captured_queries)

    create(client, api["alice"], name="s0", **fields)
    call(client, "get", SCHEDULES, api["alice"])  # the token's use is recorded once a minute
    one = listing()
    for n in range(1, 5):
        create(client, api["alice"], name=f"s{n}", **fields)
    many = listing()
    assert (one[0], many[0]) == (1, 5)
    assert many[1] == one[1]


def test_each_operation_has_its_operation_id(document):
    named = {
        operation["operationId"]: f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if path.startswith(("/schedules/", "/webhooks/"))
    }
    assert named == {
        "listSchedules": "GET /schedules/",
        "createSchedule": "POST /schedules/",
        "getSchedule": "GET /schedules/{schedule_id}/",
        "updateSchedule": "PATCH /schedules/{schedule_id}/",
        "deleteSchedule": "DELETE /schedules/{schedule_id}/",
        "runSchedule": "POST /schedules/{schedule_id}/run/",
        "listWebhooks": "GET /webhooks/",
        "createWebhook": "POST /webhooks/",
        "getWebhook": "GET /webhooks/{webhook_id}/",
        "updateWebhook": "PATCH /webhooks/{webhook_id}/",
        "deleteWebhook": "DELETE /webhooks/{webhook_id}/",
        "rotateWebhookSecret": "POST /webhooks/{webhook_id}/rotate/",
    }
