"""Idempotent submissions: a retry with the same key returns the first call's job (or schedule).

Through ``create_job(idempotency_key=...)`` and the API's ``Idempotency-Key`` header; scoped per
owner, kept for ``IDEMPOTENCY_WINDOW_SECONDS``; concurrent retries make one job (PostgreSQL).
"""

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from container_manager.engine import steps
from container_manager.models import ApiToken, ContainerJob, IdempotencyKey, JobSchedule
from container_manager.models.idempotency import IdempotencyConflict
from tests.support import race, submit

pytestmark = pytest.mark.django_db

JOBS = reverse("container_manager:api-jobs")
SCHEDULES = reverse("container_manager:api-schedules")
SERVICE = "idem-service-token"


def user_token(name):
    user = User.objects.create_user(name)
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["add_containerjob", "view_containerjob", "add_jobschedule"]
        )
    )
    return user, ApiToken.objects.issue(user)[1]


def post(client, url, body, secret, key=None):
    headers = {"Authorization": f"Bearer {secret}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(url, json.dumps(body), content_type="application/json", headers=headers)


@pytest.fixture
def api(settings, recording, mock_host):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [SERVICE]}


@pytest.mark.django_db(transaction=True)
def test_a_retry_with_the_key_returns_the_first_job(recording, mock_host):
    first = submit(mock_host, name="nightly", idempotency_key="order-42")
    again = submit(mock_host, name="nightly", idempotency_key="order-42")
    assert again.pk == first.pk
    assert (first.replayed, again.replayed) == (False, True)
    assert ContainerJob.objects.count() == 1
    assert [m[0] for m in recording.take()] == ["launch"]  # the retry sent nothing


def test_the_key_with_other_arguments_is_a_conflict_naming_it(recording, mock_host):
    submit(mock_host, name="one", idempotency_key="k")
    with pytest.raises(IdempotencyConflict) as raised:
        submit(mock_host, name="two", idempotency_key="k")
    assert isinstance(raised.value, ValidationError)
    (message,) = raised.value.message_dict["idempotency_key"]
    assert message.startswith("idempotency_key:") and "different request" in message
    assert ContainerJob.objects.count() == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "tab\there", 42])
def test_a_bad_key_is_refused_naming_the_field(mock_host, key):
    with pytest.raises(ValidationError) as raised:
        submit(mock_host, idempotency_key=key)
    assert list(raised.value.message_dict) == ["idempotency_key"]
    assert not ContainerJob.objects.exists()


def test_keys_are_scoped_per_owner(recording, mock_host):
    alice, bob = User.objects.create_user("alice"), User.objects.create_user("bob")
    jobs = [
        submit(mock_host, created_by=owner, idempotency_key="same")
        for owner in (alice, bob, None, alice, None)
    ]
    assert len({job.pk for job in jobs}) == 3
    assert (jobs[3].pk, jobs[4].pk) == (jobs[0].pk, jobs[2].pk)
    scopes = set(IdempotencyKey.objects.values_list("scope", flat=True))
    assert scopes == {f"user:{alice.pk}", f"user:{bob.pk}", "service"}


def test_after_the_window_the_key_makes_a_new_job_and_the_sweep_forgets_it(
    recording, mock_host, clock, settings
):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "IDEMPOTENCY_WINDOW_SECONDS": 60}
    first = submit(mock_host, idempotency_key="k")
    clock.advance(59)
    assert submit(mock_host, idempotency_key="k").pk == first.pk
    clock.advance(2)
    second = submit(mock_host, name="other", idempotency_key="k")  # reuse: no conflict
    assert second.pk != first.pk and not second.replayed
    assert list(IdempotencyKey.objects.values_list("job", flat=True)) == [second.pk]
    submit(mock_host, idempotency_key="another")
    clock.advance(61)
    steps.sweep()
    assert not IdempotencyKey.objects.exists()


def test_the_key_and_the_job_are_written_together_or_not_at_all(mock_host, monkeypatch):
    def broken(**fields):
        raise RuntimeError("crash between the two inserts")

    monkeypatch.setattr(IdempotencyKey.objects, "create", broken)
    with pytest.raises(RuntimeError):
        submit(mock_host, idempotency_key="k")
    assert not ContainerJob.objects.exists()


def test_an_array_is_made_once(recording, mock_host):
    first = submit(mock_host, array_size=3, idempotency_key="arr")
    assert submit(mock_host, array_size=3, idempotency_key="arr").pk == first.pk
    assert ContainerJob.objects.count() == 4


def test_api_retry_answers_200_with_the_same_id_and_other_body_409(client, api):
    alice, secret = user_token("alice")
    first = post(client, JOBS, {"docker_image": "x", "name": "a"}, secret, key="req-1")
    again = post(client, JOBS, {"name": "a", "docker_image": "x"}, secret, key="req-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    conflict = post(client, JOBS, {"docker_image": "y"}, secret, key="req-1")
    assert conflict.status_code == 409
    assert "different request" in conflict.json()["error"]
    assert "idempotency_key" in conflict.json()["fields"]
    bob, bob_secret = user_token("bob")
    other = post(client, JOBS, {"docker_image": "x", "name": "a"}, bob_secret, key="req-1")
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    service = post(client, JOBS, {"docker_image": "x", "name": "a"}, SERVICE, key="req-1")
    assert service.status_code == 201
    assert (
        post(client, JOBS, {"docker_image": "x", "name": "a"}, SERVICE, key="req-1").status_code
        == 200
    )
    assert ContainerJob.objects.count() == 3


def test_api_bad_key_is_a_400_naming_the_header(client, api):
    answer = post(client, JOBS, {"docker_image": "x"}, SERVICE, key="x" * 300)
    assert answer.status_code == 400
    assert list(answer.json()["fields"]) == ["Idempotency-Key"]
    assert not ContainerJob.objects.exists()


def test_api_schedule_retry_returns_the_first_schedule(client, api, mock_host):
    body = {"name": "hourly", "cron": "@hourly", "docker_image": "x"}
    first = post(client, SCHEDULES, body, SERVICE, key="s-1")
    again = post(client, SCHEDULES, body, SERVICE, key="s-1")
    assert (first.status_code, again.status_code) == (201, 200), again.content
    assert again.json()["id"] == first.json()["id"]
    assert post(client, SCHEDULES, {**body, "cron": "@daily"}, SERVICE, key="s-1").status_code == (
        409
    )
    assert post(client, JOBS, {"docker_image": "x"}, SERVICE, key="s-1").status_code == 409
    assert JobSchedule.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_on_postgres_make_one_job(postgres_only, recording, mock_host):
    """Eight threads released at once with one key: one job, and every thread gets its id."""
    threads, ids, errors = 8, [], []

    def retry():
        try:
            ids.append(submit(mock_host, name="once", idempotency_key="burst").pk)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    race(retry, threads)
    assert errors == []
    assert len(ids) == threads and len(set(ids)) == 1
    assert list(ContainerJob.objects.values_list("pk", flat=True)) == [ids[0]]
    assert IdempotencyKey.objects.count() == 1
    assert [m[0] for m in recording.take()] == ["launch"]


@pytest.mark.django_db(transaction=True)
def test_a_lost_race_returns_the_winners_job(recording, mock_host, monkeypatch):
    """The race, played in one thread: another caller's key lands between lookup and insert."""
    from container_manager.models import idempotency

    lookup = idempotency._lookup
    calls = []

    def late(scope, key):
        calls.append(key)
        if len(calls) == 1:
            found = lookup(scope, key)
            with monkeypatch.context() as inner:
                inner.setattr(idempotency, "_lookup", lookup)
                winner.append(submit(mock_host, idempotency_key=key))
            return found
        return lookup(scope, key)

    winner = []
    monkeypatch.setattr(idempotency, "_lookup", late)
    job = submit(mock_host, idempotency_key="race")
    assert job.pk == winner[0].pk and job.replayed
    assert ContainerJob.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_keyed_submission_costs_its_key_and_a_replay_one_read(recording, mock_host):
    def statements(**kwargs):
        with CaptureQueriesContext(connection) as captured:
            submit(mock_host, **kwargs)
        return [q["sql"].split()[0] for q in captured.captured_queries]

    assert statements(idempotency_key="k") == ["SELECT", "BEGIN", "INSERT", "INSERT", "COMMIT"]
    assert statements(idempotency_key="k") == ["SELECT"]
