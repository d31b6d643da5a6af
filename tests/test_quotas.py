"""Quotas per user on the JSON API: rows per request, active jobs, requests per minute.

Each refusal is a 429 naming the quota and its limit, with ``Retry-After``; service tokens and
Python's ``create_job`` are exempt unless asked. The request count lives in the database.
"""

import json
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from container_manager.engine import steps
from container_manager.models import ApiToken, ContainerJob, RequestWindow
from container_manager.models.limits import ACTIVE_JOBS_RETRY_AFTER, QuotaExceeded
from container_manager.rules import status as st
from tests.support import submit

pytestmark = pytest.mark.django_db

JOBS = reverse("container_manager:api-jobs")
SERVICE = "quota-service-token"


def user_token(name):
    user = User.objects.create_user(name)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_containerjob", "view_containerjob"])
    )
    return user, ApiToken.objects.issue(user)[1]


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


def post(client, secret, **body):
    return client.post(
        JOBS, json.dumps({"docker_image": "x", **body}), content_type="application/json",
        headers=bearer(secret),
    )  # fmt: skip


def too_many(response, quota, limit):
    assert response.status_code == 429, response.content
    assert response["Content-Type"] == "application/json"
    answer = response.json()
    assert (answer["quota"], answer["limit"]) == (quota, limit)
    assert quota in answer["error"] and str(limit) in answer["error"]
    assert int(response["Retry-After"]) == answer["retry_after"] >= 1
    return int(response["Retry-After"])


@pytest.fixture
def api(settings, recording, mock_host):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [SERVICE]}
    return settings


def limit(settings, **quotas):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, **quotas}


def test_an_array_of_10000_by_a_user_token_is_refused_by_default(client, api):
    _, secret = user_token("alice")
    retry = too_many(post(client, secret, array_size=10_000), "rows_per_request", 1000)
    assert retry == ACTIVE_JOBS_RETRY_AFTER
    assert not ContainerJob.objects.exists()
    assert post(client, secret, array_size=999).status_code == 201  # 1,000 rows
    assert ContainerJob.objects.count() == 1000


def test_service_tokens_are_exempt_unless_configured(client, api):
    limit(api, QUOTA_ROWS_PER_REQUEST=3, QUOTA_REQUESTS_PER_MINUTE=2)
    assert post(client, SERVICE, array_size=5).status_code == 201
    assert client.get(JOBS, headers=bearer(SERVICE)).status_code == 200
    limit(api, QUOTA_SERVICE_TOKENS=True)
    too_many(post(client, SERVICE, array_size=5), "rows_per_request", 3)


def test_active_jobs_count_the_users_live_jobs_and_array_children(client, api):
    limit(api, QUOTA_ACTIVE_JOBS=4)
    alice, secret = user_token("alice")
    _, bob_secret = user_token("bob")
    assert post(client, secret, array_size=2).status_code == 201  # parent + 2 children
    assert post(client, secret).status_code == 201  # 4 active
    retry = too_many(post(client, secret), "active_jobs", 4)
    assert retry == ACTIVE_JOBS_RETRY_AFTER
    assert post(client, bob_secret).status_code == 201  # another user's count
    single = ContainerJob.objects.get(created_by=alice, array_size__isnull=True)
    ContainerJob.objects.filter(pk=single.pk).update(status=st.COMPLETED)
    assert post(client, secret).status_code == 201
    assert ContainerJob.objects.filter(created_by=alice).count() == 5


def test_a_replay_is_not_refused_by_the_active_jobs_it_counts(client, api):
    limit(api, QUOTA_ACTIVE_JOBS=1)
    _, secret = user_token("alice")
    headers = {**bearer(secret), "Idempotency-Key": "k"}
    body = json.dumps({"docker_image": "x"})
    first = client.post(JOBS, body, content_type="application/json", headers=headers)
    again = client.post(JOBS, body, content_type="application/json", headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)


def test_requests_per_minute_are_counted_in_the_database_until_the_minute_ends(client, api, clock):
    limit(api, QUOTA_REQUESTS_PER_MINUTE=3)
    clock.current = datetime(2026, 12, 7, 12, 0, 45, 500000, tzinfo=UTC)
    alice, secret = user_token("alice")
    second_token = ApiToken.objects.issue(alice)[1]
    _, bob_secret = user_token("bob")
    assert client.get(JOBS, headers=bearer(secret)).status_code == 200
    assert post(client, secret).status_code == 201
    assert client.get(JOBS, headers=bearer(second_token)).status_code == 200  # same user
    retry = too_many(client.get(JOBS, headers=bearer(secret)), "requests_per_minute", 3)
    assert retry == 15  # 14.5 s left in the minute, rounded up
    assert client.get(JOBS, headers=bearer(bob_secret)).status_code == 200
    (window,) = RequestWindow.objects.filter(scope=f"user:{alice.pk}")
    assert window.hits == 4
    clock.advance(15)
    assert client.get(JOBS, headers=bearer(secret)).status_code == 200
    assert RequestWindow.objects.filter(scope=f"user:{alice.pk}").count() == 2
    steps.sweep()  # past minutes are deleted
    assert list(RequestWindow.objects.values_list("minute", flat=True)) == [window.minute + 1]


def test_a_counted_request_costs_one_statement(client, api, clock):
    _, secret = user_token("alice")
    client.get(JOBS, headers=bearer(secret))
    with CaptureQueriesContext(connection) as captured:
        client.get(JOBS, headers=bearer(secret))
    counts = [q["sql"] for q in captured.captured_queries if "requestwindow" in q["sql"]]
    assert len(counts) == 1 and counts[0].startswith("INSERT")


def test_create_job_in_python_is_limited_only_when_asked(settings, recording, mock_host):
    limit(settings, QUOTA_ROWS_PER_REQUEST=3, QUOTA_ACTIVE_JOBS=3)
    alice = User.objects.create_user("alice")
    assert submit(mock_host, array_size=5, created_by=alice).array_size == 5
    with pytest.raises(QuotaExceeded) as raised:
        submit(mock_host, array_size=5, created_by=alice, limited=True)
    assert (raised.value.quota, raised.value.limit) == ("rows_per_request", 3)
    with pytest.raises(QuotaExceeded) as raised:
        submit(mock_host, created_by=alice, limited=True)
    assert raised.value.quota == "active_jobs"
    assert ContainerJob.objects.count() == 6
