"""Owners of dependencies and webhook endpoints: nobody reaches a job they may not view.

A dependency on a job the submitter may not view is refused like an unknown id; an endpoint
gets the events of the jobs its owner may view (an ownerless one, the operator's, gets all).
"""

import json
import uuid

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from container_manager.engine import steps
from container_manager.engine.workflows import add_dependencies
from container_manager.models import ApiToken, ContainerJob, JobDependency
from container_manager.models.webhooks import WebhookDelivery, WebhookEndpoint
from tests.support import submit
from tests.test_api_tokens import bearer, user_with
from tests.test_statements import reads, run

pytestmark = pytest.mark.django_db(transaction=True)

JOBS = reverse("container_manager:api-jobs")
SUBMITTER = ("add_containerjob", "view_containerjob")


def post(client, secret, **payload):
    """POST a job with a user's token; the answer and the statements it cost."""
    with CaptureQueriesContext(connection) as captured:
        response = client.post(
            JOBS, json.dumps({"docker_image": "x", **payload}), content_type="application/json",
            headers=bearer(secret),
        )  # fmt: skip
    return response, len(captured.captured_queries)


@pytest.fixture
def people(recording, mock_host):
    """alice and bob (ordinary submitters with tokens), and alice's job."""
    alice, bob = user_with("alice", *SUBMITTER), user_with("bob", *SUBMITTER)
    tokens = {user.username: ApiToken.objects.issue(user)[1] for user in (alice, bob)}
    job = submit(mock_host, created_by=alice)
    return alice, bob, tokens, job


# -- dependencies ---------------------------------------------------------------------------


def test_an_invisible_dependency_answers_like_an_unknown_one_over_the_api(client, people):
    alice, bob, tokens, alices = people
    unknown = uuid.uuid4()
    client.get(JOBS, headers=bearer(tokens["bob"]))  # records the token's use (one UPDATE a minute)
    hidden, hidden_cost = post(client, tokens["bob"], depends_on=[str(alices.pk)])
    missing, missing_cost = post(client, tokens["bob"], depends_on=[str(unknown)])
    assert (hidden.status_code, missing.status_code) == (400, 400)
    assert hidden.content.replace(str(alices.pk).encode(), b"ID") == missing.content.replace(
        str(unknown).encode(), b"ID"
    )
    assert hidden_cost == missing_cost
    assert not ContainerJob.objects.filter(created_by=bob).exists()


def test_an_invisible_dependency_is_refused_like_an_unknown_one_in_python(people, mock_host):
    alice, bob, tokens, alices = people
    unknown = uuid.uuid4()
    answers = []
    for pk in (alices.pk, unknown):
        with pytest.raises(ValidationError) as caught:
            submit(mock_host, created_by=bob, depends_on=[pk])
        answers.append(caught.value.message_dict["depends_on"][0].replace(str(pk), "ID"))
    assert answers[0] == answers[1] == "depends_on: no job ID."
    bobs = submit(mock_host, created_by=bob)
    with pytest.raises(ValidationError) as caught:
        add_dependencies(bobs, [alices.pk])
    assert caught.value.message_dict["depends_on"] == [f"depends_on: no job {alices.pk}."]
    assert not JobDependency.objects.exists()


def test_a_user_may_depend_on_their_own_jobs(client, people, mock_host):
    alice, bob, tokens, alices = people
    assert post(client, tokens["bob"], depends_on=[str(alices.pk)])[0].status_code == 400
    response, _ = post(client, tokens["alice"], depends_on=[str(alices.pk)])
    assert response.status_code == 201, response.content
    assert response.json()["depends_on"] == [str(alices.pk)]
    later = submit(mock_host, created_by=alice, depends_on=[alices])
    assert list(later.depends_on.all()) == [alices]


@pytest.mark.parametrize("through", ["permission", "group", "superuser", "service"])
def test_who_sees_every_job_may_depend_on_any(client, people, settings, through):
    alice, bob, tokens, alices = people
    assert post(client, tokens["bob"], depends_on=[str(alices.pk)])[0].status_code == 400
    if through == "permission":
        bob.user_permissions.add(Permission.objects.get(codename="view_all_jobs"))
    elif through == "group":
        auditors = Group.objects.create(name="auditors")
        auditors.permissions.add(Permission.objects.get(codename="view_all_jobs"))
        bob.groups.add(auditors)
    elif through == "superuser":
        User.objects.filter(pk=bob.pk).update(is_superuser=True)
    else:
        settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": ["service"]}
        tokens["bob"] = "service"
    response, _ = post(client, tokens["bob"], depends_on=[str(alices.pk)])
    assert response.status_code == 201, response.content


def test_twenty_thousand_unknown_ids_get_a_short_answer(client, people, settings):
    alice, bob, tokens, alices = people
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_000_000
    ids = [str(uuid.uuid4()) for _ in range(20_000)]
    response, _ = post(client, tokens["bob"], depends_on=[str(alices.pk), *ids])
    assert response.status_code == 400
    assert len(response.content) < 1024
    (message,) = response.json()["fields"]["depends_on"]
    assert message == f"depends_on: no job {', '.join([str(alices.pk), *ids[:2]])} and 19998 more."


# -- webhook endpoints ------------------------------------------------------------------------


def endpoint(owner=None):
    return WebhookEndpoint.objects.create(url="https://example.com/hook", owner=owner)


def run_jobs(host, *owners):
    """A job per owner, launched and checked to completion: each makes two events."""
    jobs = [submit(host, created_by=owner) for owner in owners]
    for job in jobs:
        assert steps.run_step("launch", job.pk) == "launched"
        assert steps.run_step("check", job.pk) == "completed"
    return jobs


def received(hook):
    """(job, event) pairs delivered to ``hook``."""
    return set(WebhookDelivery.objects.filter(endpoint=hook).values_list("job_id", "event"))


def events_of(*jobs):
    return {(job.pk, event) for job in jobs for event in ("job.started", "job.completed")}


def test_an_owned_endpoint_gets_the_events_of_its_owners_jobs_only(people, mock_host):
    alice, bob, tokens, _ = people
    hers, operators = endpoint(alice), endpoint()
    alices, bobs, codes = run_jobs(mock_host, alice, bob, None)
    assert received(hers) == events_of(alices)
    assert received(operators) == events_of(alices, bobs, codes)


@pytest.mark.parametrize("through", ["permission", "group", "superuser"])
def test_an_owner_who_sees_every_job_gets_every_event(people, mock_host, through):
    alice, bob, tokens, _ = people
    auditor = User.objects.create_user("auditor", is_superuser=through == "superuser")
    grant = Permission.objects.get(codename="view_all_jobs")
    if through == "permission":
        auditor.user_permissions.add(grant)
    elif through == "group":
        auditors = Group.objects.create(name="auditors")
        auditors.permissions.add(grant)
        auditor.groups.add(auditors)
    hook, bobs = endpoint(auditor), endpoint(bob)
    jobs = run_jobs(mock_host, alice, bob, None)
    assert received(hook) == events_of(*jobs)
    assert received(bobs) == events_of(jobs[1])


def test_an_inactive_owner_gets_nothing(people, mock_host):
    alice, bob, tokens, _ = people
    boss = User.objects.create_superuser("boss", is_active=False)
    User.objects.filter(pk=alice.pk).update(is_active=False)
    hers, bosses = endpoint(alice), endpoint(boss)
    run_jobs(mock_host, alice, bob)
    assert received(hers) == received(bosses) == set()


def test_owned_endpoints_cost_the_same_statements_as_ownerless_ones(people, mock_host):
    """One SELECT of the endpoints and one INSERT per event, whoever owns the endpoints.

    On PostgreSQL a move with no event is one statement on its own; with one it also takes
    a transaction (BEGIN, COMMIT) around the two. On SQLite so does the move to running (one
    UPDATE, its trigger writing the attempt); the final move already has one.
    """
    alice, bob, tokens, _ = people
    plain = submit(mock_host, created_by=alice)
    without = [len(run(step, plain)[1]) for step in ("launch", "check")]
    auditor = user_with("auditor", "view_all_jobs")
    hooks = [endpoint(alice), endpoint(bob), endpoint(auditor)]
    job = submit(mock_host, created_by=alice)
    runs = [run(step, job)[1] for step in ("launch", "check")]
    added = [4, 4] if connection.vendor == "postgresql" else [4, 2]
    expected = [n + a for n, a in zip(without, added, strict=True)]
    assert [len(statements) for statements in runs] == expected
    for statements in runs:
        assert len(reads(statements, "container_manager_webhookendpoint")) == 1
    assert [len(received(hook)) for hook in hooks] == [2, 0, 2]


def test_the_admin_makes_an_endpoint_its_makers(client, recording):
    maker = User.objects.create_superuser("maker")
    other = User.objects.create_user("other")
    client.force_login(maker)
    url = reverse("admin:container_manager_webhookendpoint_add")
    data = {"url": "https://example.com/hook", "events": ["job.failed"], "secret": "s"}
    assert client.post(url, {**data, "owner": other.pk}).status_code == 200  # the secret page
    hook = WebhookEndpoint.objects.get()
    assert hook.owner == maker
    change = reverse("admin:container_manager_webhookendpoint_change", args=[hook.pk])
    assert client.post(change, {**data, "owner": other.pk}).status_code == 302
    assert WebhookEndpoint.objects.get().owner == maker
    listing = client.get(reverse("admin:container_manager_webhookendpoint_changelist"))
    assert "maker" in listing.content.decode()
