"""Hostile and mistaken submits through HTTP: each one a JSON 4xx naming the field, no row stored.

Run on SQLite and on PostgreSQL (which refuses NUL in text columns).
"""

import json

import pytest
from django.urls import reverse

from container_manager.models import ContainerJob

pytestmark = pytest.mark.django_db

TOKEN = "api-input-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(settings, recording, mock_host):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [TOKEN]}


def post_raw(client, body, url=None):
    return client.post(
        url or reverse("container_manager:api-jobs"), body, content_type="application/json",
        headers=BEARER,
    )  # fmt: skip


def refused(response, status=400):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    return response.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"docker_image": "x", "memory_limit": 1e400}', "memory_limit"),
        ('{"docker_image": "x", "memory_limit": Infinity}', "memory_limit"),
        ('{"docker_image": "x", "cpu_limit": NaN}', "cpu_limit"),
        ('{"docker_image": "x", "cpu_limit": -Infinity}', "cpu_limit"),
        ('{"docker_image": "x", "priority": 99999999999999999999}', "priority"),
        ('{"docker_image": "x", "max_attempts": 1e400}', "max_attempts"),
        ('{"docker_image": "x", "run_after": "2024-02-30T00:00:00Z"}', "run_after"),
        ('{"docker_image": "x", "run_after": "2024-13-01T00:00:00Z"}', "run_after"),
        ('{"docker_image": "x", "run_after": "2024-01-01T00:00:00+99:00"}', "run_after"),
        ('{"docker_image": "x", "run_after": "2024-01-01T00:00:00"}', "run_after"),
        ('{"docker_image": "x", "run_after": 5}', "run_after"),
        ('{"docker_image": "x", "name": "\\ud800"}', "name"),
        ('{"docker_image": "x", "command": "echo \\u0000"}', "command"),
        ('{"docker_image": "x\\u0000y"}', "docker_image"),
        ('{"docker_image": "x", "description": "\\udfff"}', "description"),
        ('{"docker_image": "x", "environment_vars": {"A": "a\\u0000"}}', "environment_vars"),
        ('{"docker_image": "x", "network_configuration": [{"network_name": "n\\u0000"}]}',
         "network_configuration"),
        ('{"docker_image": "x", "name": {"a": 1}}', "name"),
        ('{"docker_image": "x", "name": ["echo", "hi"]}', "name"),
        ('{"docker_image": ["echo"]}', "docker_image"),
        ('{"docker_image": 5}', "docker_image"),
        ('{"docker_image": "x", "command": ["echo", "hi"]}', "command"),
        ('{"docker_image": "x", "command": 7}', "command"),
        ('{"docker_image": "x", "timeout_seconds": 1.5}', "timeout_seconds"),
        ('{"docker_image": "x", "timeout_seconds": true}', "timeout_seconds"),
        ('{"docker_image": "x", "memory_limit": 0}', "memory_limit"),
        ('{"docker_image": "x", "host": ""}', "host"),
        ('{"docker_image": "x", "host": 3}', "host"),
        ('{"docker_image": "x", "environment_vars": {"A\\n": "1"}}', "environment_vars"),
        ('{"docker_image": "x", "environment_vars": {"1A": "1"}}', "environment_vars"),
        ('{"docker_image": "x", "environment_vars": {"": "1"}}', "environment_vars"),
        ('{"docker_image": "x", "environment_vars": ["A=1"]}', "environment_vars"),
        ('{"docker_image": "x", "\\ud800": 1}', "\\ud800"),
    ],
)  # fmt: skip
def test_bad_value_is_a_400_naming_the_field(client, api, body, field):
    before = ContainerJob.objects.count()
    answer = refused(post_raw(client, body))
    assert field in answer["fields"], answer
    assert all(message.startswith(field) for message in answer["fields"][field])
    assert ContainerJob.objects.count() == before == 0


def test_deep_nesting_is_a_400(client, api):
    answer = refused(post_raw(client, '{"docker_image": ' + "[" * 10_000 + "]" * 10_000 + "}"))
    assert "nested too deeply" in answer["fields"]["body"][0]
    assert not ContainerJob.objects.exists()


def test_deep_but_parseable_nesting_is_a_400(client, api):
    deep = "[" * 900 + '"\\u0000"' + "]" * 900
    answer = refused(
        post_raw(client, '{"docker_image": "x", "network_configuration": ' + deep + "}")
    )
    assert "network_configuration" in answer["fields"]
    assert not ContainerJob.objects.exists()


def test_environment_text_cannot_smuggle_a_variable(client, api):
    response = post_raw(
        client, json.dumps({"docker_image": "x", "environment_vars": {"A": "x\rB=1"}})
    )
    assert response.status_code == 201
    job = ContainerJob.objects.get()
    assert job.get_all_environment_variables() == {"A": "x\rB=1"}


def test_every_answer_under_api_is_json(client, api, settings):
    settings.DEBUG = False
    cases = [
        (client.get, reverse("container_manager:api-jobs") + "not-a-uuid/", 404),
        (client.get, "/cm/api/jobs/not-a-uuid/logs/", 404),
        (client.get, "/cm/api/nothing/here", 404),
        (client.delete, reverse("container_manager:api-jobs"), 405),
        (client.put, "/cm/api/openapi.json", 405),
        (client.get, "/cm/api/jobs/00000000-0000-0000-0000-000000000000/cancel/", 405),
        (client.get, reverse("container_manager:api-jobs") + "?status=bogus", 400),
    ]
    for method, url, status in cases:
        response = method(url, headers=BEARER)
        assert response.status_code == status, url
        assert "error" in response.json(), url
    assert client.delete(reverse("container_manager:api-jobs"), headers=BEARER)["Allow"] == (
        "GET, POST"
    )
    moved = client.post("/cm/api/jobs?x=1", "{}", content_type="application/json", headers=BEARER)
    assert moved.status_code == 308 and moved["Location"] == "/cm/api/jobs/?x=1"
    assert "error" in moved.json()


def test_too_large_body_is_a_413(client, api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    answer = refused(
        post_raw(client, json.dumps({"docker_image": "x", "description": "d" * 2000})), 413
    )
    assert "larger" in answer["error"]
    assert not ContainerJob.objects.exists()


def test_unexpected_error_is_a_logged_json_500(client, api, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ContainerJob.objects, "create_job", broken)
    answer = refused(post_raw(client, json.dumps({"docker_image": "x"})), 500)
    assert answer == {"error": "internal error; it was logged"}
    record = next(r for r in caplog.records if r.name == "container_manager.web.api.jobs")
    assert record.exc_info and "disk on fire" in str(record.exc_info[1])


def test_the_largest_allowed_values_are_stored(client, api):
    body = {
        "docker_image": "x", "priority": 2**31 - 1, "max_attempts": 2**31 - 1, "memory_limit": 2048,
        "timeout_seconds": 7 * 24 * 3600, "cpu_limit": 32, "run_after": "2030-01-01T00:00:00+14:00",
        "name": "n" * 200, "environment_vars": {"A_1": "\u2028\x85é"},
    }  # fmt: skip
    response = post_raw(client, json.dumps(body))
    assert response.status_code == 201, response.content
    job = ContainerJob.objects.get()
    assert (job.priority, job.max_attempts, job.cpu_limit) == (2**31 - 1, 2**31 - 1, 32)
    assert job.get_all_environment_variables() == {"A_1": "\u2028\x85é"}
