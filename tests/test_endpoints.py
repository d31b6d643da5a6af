"""The step and sweep push targets: who may push, what they answer, and duplicate pushes.

Every refused push leaves the job exactly as it was.
"""

import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import OperationalError
from django.urls import reverse

from container_manager.engine import steps
from container_manager.models import ContainerJob, UsedSignature
from container_manager.web.auth import sign_request
from tests.push_support import HMAC_SECRET, push_settings

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pushes(settings, issuer):
    """Recording dispatch, and auth trusting the local issuer and the test secret."""
    return push_settings(settings, issuer)


@pytest.fixture
def job(pushes, mock_host):
    submitted = ContainerJob.objects.create_job(image="x", docker_host=mock_host)
    pushes.take()
    return submitted


def step_url(step):
    return reverse("container_manager:step", args=[step])


def push(client, step, job_id, **headers):
    body = json.dumps({"job_id": str(job_id)})
    return client.post(step_url(step), body, content_type="application/json", headers=headers)


def signed(step, job_id, timestamp=None, secret=HMAC_SECRET):
    body = json.dumps({"job_id": str(job_id)}).encode()
    return body, sign_request("POST", step_url(step), body, secret=secret, timestamp=timestamp)


def post_signed(client, step, body, headers):
    return client.post(step_url(step), body, content_type="application/json", headers=headers)


def status_of(job):
    return ContainerJob.objects.get(pk=job.pk).status


def test_valid_oidc_token_runs_the_step(client, job, issuer):
    response = push(client, "launch", job.pk, Authorization=f"Bearer {issuer.token()}")
    assert response.status_code == 200
    assert response.json() == {"step": "launch", "job_id": str(job.pk), "result": "launched"}
    assert status_of(job) == "running"


@pytest.mark.parametrize(
    ("claims", "expected_status", "reason"),
    [
        ({"aud": "https://someone-else.example.com/"}, 401, "audience"),
        ({"email": "intruder@evil.iam.gserviceaccount.com"}, 403, "may not push"),
        ({"email_verified": False}, 403, "not verified"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, 401, "xpired"),
        ({"iss": "https://issuer.example.com"}, 401, "not Google"),
    ],
)
def test_bad_oidc_tokens_are_refused(client, job, issuer, claims, expected_status, reason):
    response = push(client, "launch", job.pk, Authorization=f"Bearer {issuer.token(**claims)}")
    assert response.status_code == expected_status
    assert reason in response.json()["error"]
    assert status_of(job) == "pending"


def test_token_signed_by_another_key_is_refused(client, job, issuer):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = push(client, "launch", job.pk, Authorization=f"Bearer {issuer.token(key=other)}")
    assert response.status_code == 401
    assert status_of(job) == "pending"


def test_missing_credentials(client, job):
    response = push(client, "launch", job.pk)
    assert response.status_code == 401
    assert status_of(job) == "pending"


def test_hmac_signature_accepted_once_then_replay_refused(client, job):
    body, headers = signed("launch", job.pk)
    assert post_signed(client, "launch", body, headers).status_code == 200
    assert status_of(job) == "running"
    replay = post_signed(client, "launch", body, headers)
    assert replay.status_code == 403 and "replayed" in replay.json()["error"]
    assert UsedSignature.objects.count() == 1


def test_hmac_retry_after_a_failed_attempt_is_accepted(client, job, monkeypatch):
    body, headers = signed("launch", job.pk)
    real = steps.run_step
    calls = []

    def flaky(step, job_id):
        calls.append(step)
        if len(calls) == 1:
            raise OperationalError("database restarting")
        return real(step, job_id)

    monkeypatch.setattr(steps, "run_step", flaky)
    assert post_signed(client, "launch", body, headers).status_code == 503
    assert status_of(job) == "pending"
    assert post_signed(client, "launch", body, headers).status_code == 200
    assert status_of(job) == "running"


@pytest.mark.parametrize(
    ("age", "secret", "expected_status"),
    [(-3600, HMAC_SECRET, 401), (3600, HMAC_SECRET, 401), (0, "wrong-secret", 403)],
)
def test_bad_hmac_is_refused(client, job, age, secret, expected_status):
    body, headers = signed("launch", job.pk, timestamp=time.time() + age, secret=secret)
    assert post_signed(client, "launch", body, headers).status_code == expected_status
    assert status_of(job) == "pending"


def test_signature_covers_the_step(client, job):
    body, headers = signed("cancel", job.pk)
    assert post_signed(client, "launch", body, headers).status_code == 403
    assert status_of(job) == "pending"


def test_bad_body_and_unknown_step(client, job, issuer):
    bearer = {"Authorization": f"Bearer {issuer.token()}"}
    bad = client.post(step_url("launch"), "nope", content_type="application/json", headers=bearer)
    assert bad.status_code == 400
    assert push(client, "explode", job.pk, **bearer).status_code == 404
    assert client.get(step_url("launch"), headers=bearer).status_code == 405


def test_duplicate_and_out_of_order_pushes_leave_the_job_right(client, job, pushes, issuer, clock):
    bearer = {"Authorization": f"Bearer {issuer.token()}"}
    results = [
        push(client, s, job.pk, **bearer).json()["result"] for s in ("harvest", "launch", "launch")
    ]
    assert results == ["nothing-to-do", "launched", "nothing-to-do"]
    clock.advance(0.05)
    assert push(client, "harvest", job.pk, **bearer).json()["result"] == "completed"
    assert push(client, "check", job.pk, **bearer).json()["result"] == "nothing-to-do"
    assert push(client, "launch", job.pk, **bearer).json()["result"] == "nothing-to-do"
    row = ContainerJob.objects.get(pk=job.pk)
    assert (row.status, row.attempt_count, row.exit_code) == ("completed", 1, 0)


def test_sweep_endpoint(client, job, pushes, issuer):
    UsedSignature.objects.create(signature="old", expires_at="2000-01-01T00:00:00Z")
    ContainerJob.objects.filter(pk=job.pk).update(created_at="2000-01-01T00:00:00Z")
    response = client.post(
        reverse("container_manager:sweep"), headers={"Authorization": f"Bearer {issuer.token()}"}
    )
    assert response.status_code == 200
    assert response.json()["sent"]["launch"] == 1
    assert response.json()["signatures_forgotten"] == 1
    assert pushes.take() == [("launch", str(job.pk), 0.0)]
    assert client.post(reverse("container_manager:sweep")).status_code == 401
