"""With DEBUG off, an unhandled exception of a request is logged with its traceback to stderr,
with the job id when the request names one (functions/settings.py LOGGING)."""

import json
import logging

import pytest
from django.test import Client
from django.urls import reverse

from container_manager import steps
from tests.push_support import HMAC_SECRET

pytestmark = pytest.mark.django_db


def test_unhandled_step_error_is_logged_with_traceback_and_job_id(
    settings, monkeypatch, mock_host, recording, caplog
):
    from container_manager.auth import sign_request

    settings.DEBUG = False
    settings.CONTAINER_MANAGER = {
        **settings.CONTAINER_MANAGER, "AUTH": {"HMAC_SECRET": HMAC_SECRET},
    }  # fmt: skip
    job_id = "6b1f0c52-0d2c-4a53-9d1e-8f6a2b7c9e01"

    def broken(step, job):
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(steps, "run_step", broken)
    body = json.dumps({"job_id": job_id}).encode()
    path = reverse("container_manager:step", args=["launch"])
    headers = sign_request("POST", path, body, secret=HMAC_SECRET)
    client = Client(raise_request_exception=False)
    handler = logging.getLogger("django.request").handlers[0]
    lines = []
    monkeypatch.setattr(handler, "emit", lambda record: lines.append(handler.format(record)))
    response = client.post(path, body, content_type="application/json", headers=headers)
    assert response.status_code == 500
    text = "\n".join(lines)
    assert "Traceback" in text and "the disk is on fire" in text
    assert f"[job {job_id}]" in text
    assert type(handler) is logging.StreamHandler  # standard error: no file, no mail
