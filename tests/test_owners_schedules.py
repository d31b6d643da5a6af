"""Schedules have owners: listed under the job rule, fired as their owner, checked at save.

Probed as issue 26 did: two ordinary users (alice, bob) with API tokens, a staff user with
``view_all_jobs`` and a service token. The recording backend delivers nothing, so the jobs a
schedule makes stay pending.
"""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from container_manager.engine import firing
from container_manager.models import ApiToken, ContainerJob
from container_manager.models.schedules import JobSchedule

pytestmark = pytest.mark.django_db

SCHEDULES = reverse("container_manager:api-schedules")
SERVICE = "owners-service-token"
ORDINARY = (
    "add_containerjob", "view_containerjob", "change_containerjob", "add_jobschedule",
    "view_jobschedule",
)  # fmt: skip


def user_with(name, *codenames, **fields):
    user = User.objects.create_user(name, password="pw", **fields)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


def token(user):
    return ApiToken.objects.issue(user)[1]


def post(client, secret, **fields):
    body = {"name": "nightly", "cron": "@daily", "docker_image": "x", **fields}
    return client.post(
        SCHEDULES, json.dumps(body), content_type="application/json", headers=bearer(secret)
    )


def listed(client, secret):
    response = client.get(SCHEDULES, headers=bearer(secret))
    assert response.status_code == 200, response.content
    return sorted((s["name"], s["docker_image"]) for s in response.json()["schedules"])


@pytest.fixture
def people(settings, recording, mock_host):
    """alice, bob, a staff auditor with view_all_jobs: ``{name: (user, secret)}``."""
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [SERVICE]}
    alice, bob = user_with("alice", *ORDINARY), user_with("bob", *ORDINARY)
    staff = user_with("staff", "view_jobschedule", "view_containerjob", "view_all_jobs")
    return {user.username: (user, token(user)) for user in (alice, bob, staff)}


def fire_next(schedule_id):
    """Fire the schedule at its next time (a clock injected as ``now``); the jobs made."""
    schedule = JobSchedule.objects.get(pk=schedule_id)
    return firing.fire(schedule, schedule.next_run_at + timedelta(seconds=30))


def test_each_user_lists_only_the_schedules_the_job_rule_lets_them_see(client, people):
    (_, alice), (_, bob), (_, staff) = people["alice"], people["bob"], people["staff"]
    assert post(client, alice, command="alice's secret command").status_code == 201
    JobSchedule.objects.create(name="legacy", cron="@daily", docker_image="trusted")
    assert listed(client, bob) == []
    assert listed(client, alice) == [("nightly", "x")]
    assert [name for name, _ in listed(client, staff)] == ["legacy", "nightly"]
    assert [name for name, _ in listed(client, SERVICE)] == ["legacy", "nightly"]
    assert JobSchedule.objects.get(name="nightly").owner == people["alice"][0]
    assert JobSchedule.objects.get(name="legacy").owner is None


def test_names_are_unique_per_owner_and_a_clash_tells_nothing_of_others(client, people):
    (_, alice), (_, bob) = people["alice"], people["bob"]
    assert post(client, alice, name="report-for-acme").status_code == 201
    assert post(client, bob, name="report-for-acme").status_code == 201
    again = post(client, bob, name="report-for-acme")
    assert again.status_code == 400
    assert again.json()["fields"] == {
        "name": ["name: the owner already has a schedule named 'report-for-acme'."]
    }
    assert "alice" not in again.content.decode()
    assert JobSchedule.objects.filter(name="report-for-acme").count() == 2
    JobSchedule.objects.create(name="trusted", cron="@daily", docker_image="x")
    with pytest.raises(ValidationError) as caught:
        JobSchedule(name="trusted", cron="@daily", docker_image="x").full_clean()
    assert list(caught.value.message_dict) == ["name"]


def test_a_clash_that_slips_past_clean_is_still_a_400_on_name(client, people, monkeypatch):
    alice = people["alice"][1]
    assert post(client, alice).status_code == 201
    real, looks = JobSchedule.name_clash, []

    def first_look_misses(schedule):  # another request saved the name after this one's check
        looks.append(schedule.name)
        return None if len(looks) == 1 else real(schedule)

    monkeypatch.setattr(JobSchedule, "name_clash", first_look_misses)
    again = post(client, alice)
    assert again.status_code == 400
    assert again.json()["fields"] == {
        "name": ["name: the owner already has a schedule named 'nightly'."]
    }
    assert JobSchedule.objects.count() == 1


def test_a_fired_job_belongs_to_the_schedule_owner(client, people):
    (alice_user, alice), (_, bob) = people["alice"], people["bob"]
    created = post(client, alice, cron="*/5 * * * *")
    [job] = fire_next(created.json()["id"])
    assert job.created_by == alice_user
    url = reverse("container_manager:api-job", args=[job.pk])
    assert client.get(url, headers=bearer(alice)).status_code == 200
    assert client.get(url, headers=bearer(bob)).status_code == 404
    jobs = client.get(reverse("container_manager:api-jobs"), headers=bearer(alice)).json()
    assert [j["id"] for j in jobs["jobs"]] == [str(job.pk)]


def test_creating_a_schedule_needs_add_containerjob_in_the_api_and_the_admin(client, people):
    planner = user_with("planner", "add_jobschedule", "view_jobschedule", "change_jobschedule")
    response = post(client, token(planner))
    assert response.status_code == 403
    assert response.json() == {"error": "this token's user may not add container jobs"}
    assert not JobSchedule.objects.exists()
    User.objects.filter(pk=planner.pk).update(is_staff=True)
    client.force_login(planner)
    add = reverse("admin:container_manager_jobschedule_add")
    assert client.get(add).status_code == 403
    assert client.post(add, {"name": "n", "cron": "@daily"}).status_code == 403
    assert not JobSchedule.objects.exists()
    theirs = JobSchedule.objects.create(
        name="alice's", cron="@daily", docker_image="x", owner=people["alice"][0]
    )
    run = reverse("admin:container_manager_jobschedule_run", args=[theirs.pk])
    assert client.post(run).status_code == 403  # "Run now" would submit a job
    change = reverse("admin:container_manager_jobschedule_change", args=[theirs.pk])
    client.post(change, {"name": "alice's", "cron": "@daily", "docker_image": "rm -rf"})
    assert JobSchedule.objects.get(pk=theirs.pk).docker_image == "x"
    assert not ContainerJob.objects.exists()


def test_a_schedule_added_in_the_admin_is_owned_by_its_author(client, people, mock_host):
    author = user_with("author", *ORDINARY, "change_jobschedule", is_staff=True)
    JobSchedule.objects.create(
        name="shared-name", cron="@daily", docker_image="x", owner=people["bob"][0]
    )
    client.force_login(author)
    add = reverse("admin:container_manager_jobschedule_add")
    page = client.get(add).content.decode()
    assert 'name="owner"' not in page  # read-only
    form = {
        "name": "shared-name", "cron": "@daily", "timezone": "UTC", "enabled": "on",
        "overlap": "allow", "catchup": "1", "docker_image": "x", "timeout_seconds": "3600",
    }  # fmt: skip
    assert client.post(add, form).status_code == 302
    mine = JobSchedule.objects.get(owner=author)
    assert mine.name == "shared-name"
    clash = client.post(add, form)
    assert clash.status_code == 200
    assert "the owner already has a schedule named" in clash.content.decode()
    assert (
        client.post(add, {**form, "name": "big", "memory_limit": "1000000000"}).status_code == 200
    )
    assert not JobSchedule.objects.filter(name="big").exists()
    change = reverse("admin:container_manager_jobschedule_change", args=[mine.pk])
    assert "author" in client.get(change).content.decode()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"memory_limit": 10**9}, "memory_limit"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"cpu_limit": 100.0}, "cpu_limit"),
        ({"catchup": 2.5}, "catchup"),
        ({"catchup": "2"}, "catchup"),
        ({"catchup": True}, "catchup"),
        ({"catchup": 101}, "catchup"),
        ({"memory_limit": 512.5}, "memory_limit"),
        ({"environment_vars": {"1BAD": "x"}}, "environment_vars"),
    ],
)
def test_the_api_refuses_job_fields_the_submit_contract_refuses(client, people, fields, field):
    response = post(client, people["alice"][1], **fields)
    assert response.status_code == 400, response.content
    assert list(response.json()["fields"]) == [field]
    assert response.json()["fields"][field][0].startswith(f"{field}: ")
    assert not JobSchedule.objects.exists()


def test_the_model_refuses_them_at_clean_and_at_save(mock_host):
    for fields, field in (
        ({"memory_limit": 10**9}, "memory_limit"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
    ):
        schedule = JobSchedule(name="bad", cron="@daily", docker_image="x", **fields)
        with pytest.raises(ValidationError) as caught:
            schedule.full_clean()
        assert list(caught.value.message_dict) == [field]
        with pytest.raises(ValidationError) as caught:
            schedule.save()
        assert list(caught.value.message_dict) == [field]
    assert not JobSchedule.objects.exists()
    legacy = JobSchedule.objects.create(name="old", cron="@daily", docker_image="x")
    JobSchedule.objects.filter(pk=legacy.pk).update(memory_limit=10**9)  # before the contract
    legacy = JobSchedule.objects.get(pk=legacy.pk)
    legacy.enabled = False
    legacy.save(update_fields=["enabled", "updated_at"])  # it can still be disabled
    assert not JobSchedule.objects.get(pk=legacy.pk).enabled


@pytest.mark.parametrize("lose", ["permission", "active"])
def test_an_owner_who_may_no_longer_submit_does_not_fire(client, people, lose):
    alice_user, alice = people["alice"]
    schedule_id = post(client, alice, cron="*/5 * * * *").json()["id"]
    if lose == "permission":
        alice_user.user_permissions.remove(Permission.objects.get(codename="add_containerjob"))
    else:
        User.objects.filter(pk=alice_user.pk).update(is_active=False)
    before = JobSchedule.objects.get(pk=schedule_id)
    stale = JobSchedule.objects.get(pk=schedule_id)
    now = before.next_run_at + timedelta(seconds=30)
    assert firing.fire(before, now) == []
    assert firing.fire(stale, now) == []  # twice is safe: the claim was taken
    row = JobSchedule.objects.get(pk=schedule_id)
    expected = "add_containerjob" if lose == "permission" else "is inactive"
    assert expected in row.last_outcome and "alice" in row.last_outcome
    assert row.enabled and row.next_run_at == before.next_run_at + timedelta(minutes=5)
    assert not ContainerJob.objects.exists()
    assert firing.run_now(row) is None
    assert not ContainerJob.objects.exists()
    if lose == "permission":
        alice_user.user_permissions.add(Permission.objects.get(codename="add_containerjob"))
    else:
        User.objects.filter(pk=alice_user.pk).update(is_active=True)
    assert len(fire_next(schedule_id)) == 1  # fires again once the owner may


def test_deleting_the_owner_deletes_their_schedules(client, people):
    alice_user, alice = people["alice"]
    post(client, alice)
    alice_user.delete()
    assert not JobSchedule.objects.exists()


def test_statements_per_firing_stay_constant(people, mock_host):
    """An owner costs 3 statements per firing, whatever the number fired: the permission check
    (2 SELECTs on ModelBackend) and ``create_job``'s check that ``created_by`` exists."""
    alice = people["alice"][0]
    due = []
    for n in range(4):
        schedule = JobSchedule(
            name=f"s{n}", cron="*/5 * * * *", docker_image="x", docker_host=mock_host,
            owner=alice if n % 2 else None,
        )  # fmt: skip
        schedule.save()
        due.append(schedule)
    now = max(s.next_run_at for s in due) + timedelta(seconds=30)
    counts = []
    for schedule in due:
        loaded = JobSchedule.objects.select_related("last_job", "owner").get(pk=schedule.pk)
        with CaptureQueriesContext(connection) as captured:
            assert len(firing.fire(loaded, now)) == 1
        counts.append(len(captured.captured_queries))
    unowned, owned = counts[0], counts[1]
    assert counts == [unowned, owned, unowned, owned]
    assert owned == unowned + 3
