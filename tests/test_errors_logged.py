"""With DEBUG off, an unhandled exception of a request or a step is logged with its traceback
to stderr, with the job id when there is one (functions/settings.py LOGGING)."""

import json
import logging

import pytest
from django.test import Client
from django.urls import reverse

from container_manager.engine import steps
from container_manager.web import endpoints
from tests.push_support import HMAC_SECRET

pytestmark = pytest.mark.django_db


JOB_ID = "6b1f0c52-0d2c-4a53-9d1e-8f6a2b7c9e01"


def push(settings):
    """POST a signed launch push for ``JOB_ID`` with DEBUG off; the response."""
    from container_manager.web.auth import sign_request

    settings.DEBUG = False
    settings.CONTAINER_MANAGER = {
        **settings.CONTAINER_MANAGER, "AUTH": {"HMAC_SECRET": HMAC_SECRET},
    }  # fmt: skip
    body = json.dumps({"job_id": JOB_ID}).encode()
    path = reverse("container_manager:step", args=["launch"])
    headers = sign_request("POST", path, body, secret=HMAC_SECRET)
    client = Client(raise_request_exception=False)
    return client.post(path, body, content_type="application/json", headers=headers)


def captured(monkeypatch, logger_name):
    """Formatted lines the first handler of ``logger_name`` would write, and that handler."""
    handler = logging.getLogger(logger_name).handlers[0]
    lines = []
    monkeypatch.setattr(handler, "emit", lambda record: lines.append(handler.format(record)))
    return lines, handler


def broken(*args, **kwargs):
    raise RuntimeError("the disk is on fire")


def test_unhandled_request_error_is_logged_with_traceback_and_job_id(
    settings, monkeypatch, mock_host, recording
):
    monkeypatch.setattr(endpoints.runner, "run", broken)
    lines, handler = captured(monkeypatch, "django.request")
    assert push(settings).status_code == 500
    text = "\n".join(lines)
    assert "Traceback" in text and "the disk is on fire" in text
    assert f"[job {JOB_ID}]" in text
    assert type(handler) is logging.StreamHandler  # standard error: no file, no mail


def test_step_error_is_logged_with_traceback_and_job_id(
    settings, monkeypatch, mock_host, recording
):
    monkeypatch.setattr(steps, "run_step", broken)
    lines, handler = captured(monkeypatch, "container_manager")
    assert push(settings).status_code == 503
    text = "\n".join(lines)
    assert "Traceback" in text and "the disk is on fire" in text and JOB_ID in text
    assert type(handler) is logging.StreamHandler


def test_a_broken_constraint_is_logged_as_a_bug_not_as_the_database_away(monkeypatch, caplog):
    # An IntegrityError once looked like an outage ("database unavailable") and hid a bug.
    from django.db import IntegrityError

    from container_manager.engine import runner

    def collides(job_id):
        raise IntegrityError("UNIQUE constraint failed: container_manager_containerexecution")

    monkeypatch.setitem(steps.STEPS, "harvest", collides)
    with caplog.at_level(logging.WARNING, logger="container_manager.engine.runner"):
        outcome = runner.run("harvest", JOB_ID)
    assert outcome.verdict == runner.Verdict.RETRY
    assert "database unavailable" not in caplog.text
    assert "UNIQUE constraint failed" in caplog.text
    assert any(record.exc_info for record in caplog.records)
