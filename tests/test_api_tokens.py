"""API tokens that belong to users, through HTTP: permissions, own jobs only, revocation.

Service tokens of ``API_TOKENS`` keep full access; another user's job answers 404.
"""

import json
from io import StringIO

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.urls import reverse

from container_manager.models import ApiToken, ContainerJob
from container_manager.models.tokens import hash_secret

pytestmark = pytest.mark.django_db

JOBS = reverse("container_manager:api-jobs")


def user_with(name, *codenames):
    user = User.objects.create_user(name)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


def submit(client, secret, **payload):
    return client.post(
        JOBS, json.dumps({"docker_image": "x", **payload}), content_type="application/json",
        headers=bearer(secret),
    )  # fmt: skip


@pytest.fixture
def alice(recording, mock_host):
    user = user_with("alice", "add_containerjob", "view_containerjob", "change_containerjob")
    return user, ApiToken.objects.issue(user, name="alice-ci")[1]


def test_only_a_hash_of_the_secret_is_stored(alice):
    user, secret = alice
    token = ApiToken.objects.get(user=user)
    assert token.secret_hash == hash_secret(secret) and secret not in token.secret_hash
    assert ApiToken.objects.filter(secret_hash=secret).count() == 0


def test_token_submits_as_its_user_and_sees_only_its_jobs(client, alice, mock_host):
    user, secret = alice
    bob = user_with("bob", "add_containerjob", "view_containerjob", "change_containerjob")
    bob_secret = ApiToken.objects.issue(bob)[1]
    others = ContainerJob.objects.create_job(image="admin-submitted")
    response = submit(client, secret, name="mine")
    assert response.status_code == 201
    mine = ContainerJob.objects.get(pk=response.json()["id"])
    assert mine.created_by == user
    listing = client.get(JOBS, headers=bearer(secret)).json()["jobs"]
    assert [job["id"] for job in listing] == [str(mine.pk)]
    for url in (
        reverse("container_manager:api-job", args=[others.pk]),
        reverse("container_manager:api-job-logs", args=[others.pk]),
    ):
        assert client.get(url, headers=bearer(secret)).status_code == 404
    cancel = reverse("container_manager:api-job-cancel", args=[mine.pk])
    assert client.post(cancel, headers=bearer(bob_secret)).status_code == 404
    assert ContainerJob.objects.get(pk=mine.pk).cancel_requested_at is None
    assert client.post(cancel, headers=bearer(secret)).status_code == 202
    assert ContainerJob.objects.get(pk=mine.pk).cancel_requested_at is not None
    assert ApiToken.objects.get(user=user).last_used is not None


def test_view_all_jobs_permission_sees_every_job(client, recording, mock_host):
    auditor = user_with("auditor", "view_containerjob", "view_all_jobs")
    secret = ApiToken.objects.issue(auditor)[1]
    job = ContainerJob.objects.create_job(image="x")
    listing = client.get(JOBS, headers=bearer(secret)).json()["jobs"]
    assert [j["id"] for j in listing] == [str(job.pk)]
    url = reverse("container_manager:api-job", args=[job.pk])
    assert client.get(url, headers=bearer(secret)).status_code == 200


def test_each_action_needs_its_django_permission(client, recording, mock_host):
    reader = user_with("reader", "view_containerjob")
    secret = ApiToken.objects.issue(reader)[1]
    assert submit(client, secret).status_code == 403
    assert ContainerJob.objects.count() == 0
    assert client.get(JOBS, headers=bearer(secret)).status_code == 200
    nobody = ApiToken.objects.issue(user_with("nobody"))[1]
    assert client.get(JOBS, headers=bearer(nobody)).status_code == 403
    job = ContainerJob.objects.create_job(image="x", created_by=reader)
    cancel = reverse("container_manager:api-job-cancel", args=[job.pk])
    assert client.post(cancel, headers=bearer(secret)).status_code == 403
    assert ContainerJob.objects.get(pk=job.pk).cancel_requested_at is None


def test_revoked_token_and_inactive_user_are_refused(client, alice):
    user, secret = alice
    assert client.get(JOBS, headers=bearer(secret)).status_code == 200
    ApiToken.objects.get(user=user).revoke()
    assert client.get(JOBS, headers=bearer(secret)).status_code == 403
    second = ApiToken.objects.issue(user)[1]
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert client.get(JOBS, headers=bearer(second)).status_code == 403


def test_service_tokens_keep_full_access(client, settings, alice):
    user, secret = alice
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": ["service"]}
    theirs = submit(client, secret).json()["id"]
    response = submit(client, "service")
    assert response.status_code == 201
    assert ContainerJob.objects.get(pk=response.json()["id"]).created_by is None
    listing = client.get(JOBS, headers=bearer("service")).json()["jobs"]
    assert {j["id"] for j in listing} == {theirs, response.json()["id"]}


def test_issue_api_token_command_prints_a_working_secret_once(client, alice):
    out, err = StringIO(), StringIO()
    call_command("issue_api_token", "alice", "--name", "laptop", stdout=out, stderr=err)
    secret = out.getvalue().strip()
    assert secret.startswith("cm_") and secret not in err.getvalue()
    assert ApiToken.objects.get(name="laptop").secret_hash == hash_secret(secret)
    assert client.get(JOBS, headers=bearer(secret)).status_code == 200
    with pytest.raises(CommandError, match="no user"):
        call_command("issue_api_token", "mallory", stdout=out)


def test_admin_revokes_tokens(admin_client, alice, client):
    user, secret = alice
    token = ApiToken.objects.get(user=user)
    changelist = reverse("admin:container_manager_apitoken_changelist")
    page = admin_client.get(changelist)
    assert page.status_code == 200 and "alice-ci" in page.content.decode()
    assert secret not in page.content.decode()
    assert admin_client.get(reverse("admin:container_manager_apitoken_add")).status_code == 403
    admin_client.post(changelist, {"action": "revoke_tokens", "_selected_action": [token.pk]})
    assert ApiToken.objects.get(pk=token.pk).revoked
    assert client.get(JOBS, headers=bearer(secret)).status_code == 403
