"""Schedules and webhooks in the admin and the JSON API, through Django's test client.

The recording backend delivers nothing, so jobs made by "run now" stay pending.
"""

import json
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from openapi_schema_validator import OAS30Validator

from container_manager.engine import steps
from container_manager.models import ContainerJob
from container_manager.models.schedules import JobSchedule
from container_manager.models.webhooks import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db

TOKEN = "schedule-api-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def admin(client):
    user = User.objects.create_superuser("root", password="pw")
    client.force_login(user)
    return client


@pytest.fixture
def schedule(mock_host):
    return JobSchedule.objects.create(
        name="berlin-nightly", cron="30 2 * * *", timezone="Europe/Berlin", docker_image="x",
        docker_host=mock_host,
    )  # fmt: skip


def test_list_shows_next_run_in_the_schedule_zone(admin, schedule):
    page = admin.get(reverse("admin:container_manager_jobschedule_changelist")).content.decode()
    assert "berlin-nightly" in page
    local = schedule.next_run_at.astimezone(ZoneInfo("Europe/Berlin"))
    assert local.strftime("%Y-%m-%d %H:%M %Z") in page and local.hour == 2


def test_page_shows_the_next_five_runs(admin, schedule):
    url = reverse("admin:container_manager_jobschedule_change", args=[schedule.pk])
    page = admin.get(url).content.decode()
    assert page.count(" 02:30 CE") + page.count(" 03:00 CEST") == 5
    assert "Run now" in page


def test_enable_disable_actions(admin, schedule):
    url = reverse("admin:container_manager_jobschedule_changelist")
    admin.post(url, {"action": "disable", "_selected_action": [schedule.pk]})
    row = JobSchedule.objects.get(pk=schedule.pk)
    assert (row.enabled, row.next_run_at) == (False, None)
    admin.post(url, {"action": "enable", "_selected_action": [schedule.pk]})
    row = JobSchedule.objects.get(pk=schedule.pk)
    assert row.enabled and row.next_run_at is not None


def test_run_now_and_job_list_filter(admin, schedule, recording, mock_host):
    other = ContainerJob.objects.create_job(
        image="unrelated", name="unrelated", docker_host=mock_host
    )
    response = admin.post(reverse("admin:container_manager_jobschedule_run", args=[schedule.pk]))
    assert response.status_code == 302
    job = ContainerJob.objects.get(executor_metadata__schedule__id=schedule.pk)
    assert job.executor_metadata["schedule"]["manual"] is True
    assert JobSchedule.objects.get(pk=schedule.pk).last_job_id == job.pk
    jobs = reverse("admin:container_manager_containerjob_changelist")
    page = admin.get(f"{jobs}?schedule={schedule.pk}").content.decode()
    assert str(job.pk)[:8] in page and str(other.pk)[:8] not in page
    assert (
        admin.get(
            reverse("admin:container_manager_jobschedule_run", args=[schedule.pk])
        ).status_code
        == 403
    )


def test_job_page_shows_its_deliveries(admin, recording, mock_host):
    endpoint = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/hook")
    job = ContainerJob.objects.create_job(image="x", docker_host=mock_host)
    steps.launch(job.pk)  # its move to running writes the job.started delivery
    WebhookDelivery.objects.filter(endpoint=endpoint, job=job, event="job.started").update(
        attempts=2, status_code=503, error="HTTP 503 Service Unavailable"
    )
    page = admin.get(
        reverse("admin:container_manager_containerjob_change", args=[job.pk])
    ).content.decode()
    assert "HTTP 503 Service Unavailable" in page and "job.started" in page


def test_endpoint_admin_form_saves_events(admin):
    url = reverse("admin:container_manager_webhookendpoint_add")
    data = {
        "url": "https://example.com/hook",
        "events": ["job.failed", "job.timeout"],
        "secret": "s",
        "active": "on",
    }
    made = admin.post(url, data)  # the page that shows the new secret once
    assert made.status_code == 200 and WebhookEndpoint.objects.get().secret in made.content.decode()
    assert WebhookEndpoint.objects.get().events == ["job.failed", "job.timeout"]
    assert admin.post(url, {**data, "url": "gopher://example.com"}).status_code == 200


def test_api_lists_and_creates_schedules_with_the_job_tokens(
    client, settings, recording, mock_host
):
    url = reverse("container_manager:api-schedules")
    assert client.get(url, headers=BEARER).status_code == 403  # no token configured
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [TOKEN]}
    assert client.get(url).status_code == 401
    body = {
        "name": "api-hourly",
        "cron": "@hourly",
        "docker_image": "x",
        "host": mock_host.name,
        "environment_vars": {"A": "1"},
    }
    response = client.post(url, json.dumps(body), content_type="application/json", headers=BEARER)
    assert response.status_code == 201, response.content
    created = response.json()
    document = client.get(reverse("container_manager:api-openapi")).json()
    components = document["components"]
    OAS30Validator({**components["schemas"]["Schedule"], "components": components}).validate(
        created
    )
    assert created["next_run_at"] is not None and created["host"] == mock_host.name
    assert JobSchedule.objects.get(name="api-hourly").override_environment == "A=1"
    listed = client.get(url, headers=BEARER).json()["schedules"]
    assert [s["name"] for s in listed] == ["api-hourly"]
    for bad, field in (
        ({"cron": "every day"}, "cron"),
        ({"timezone": "Nowhere/City"}, "timezone"),
        ({"colour": "red"}, "colour"),
    ):
        response = client.post(
            url,
            json.dumps({**body, "name": "bad", **bad}),
            content_type="application/json",
            headers=BEARER,
        )
        assert response.status_code == 400
        assert list(response.json()["fields"]) == [field]
    assert JobSchedule.objects.count() == 1


def test_api_user_tokens_need_the_schedule_permissions(client, recording, mock_host):
    from django.contrib.auth.models import Permission

    from container_manager.models.tokens import ApiToken

    user = User.objects.create_user("planner")
    _, secret = ApiToken.objects.issue(user, "test")
    headers = {"Authorization": f"Bearer {secret}"}
    url = reverse("container_manager:api-schedules")
    body = json.dumps({"name": "u", "cron": "@daily", "docker_image": "x"})
    assert client.get(url, headers=headers).status_code == 403
    assert (
        client.post(url, body, content_type="application/json", headers=headers).status_code == 403
    )
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_jobschedule", "add_jobschedule"])
    )
    response = client.post(url, body, content_type="application/json", headers=headers)
    assert response.status_code == 403  # a schedule submits jobs: add_containerjob too
    user.user_permissions.add(Permission.objects.get(codename="add_containerjob"))
    response = client.post(url, body, content_type="application/json", headers=headers)
    assert response.status_code == 201
    assert [s["name"] for s in client.get(url, headers=headers).json()["schedules"]] == ["u"]
