"""Structured logs: records made during a step carry job_id and step; JSON lines on request."""

import io
import json
import logging
import logging.config

import pytest
from django.core.exceptions import ImproperlyConfigured

from container_manager.engine import steps
from functions.settings import log_settings


@pytest.fixture
def captured():
    """The functions project's JSON logging, writing to a buffer; restored afterwards."""
    config = log_settings("json", "INFO")
    buffer = io.StringIO()
    config["handlers"]["console"]["stream"] = buffer
    logging.config.dictConfig(config)
    yield buffer
    logging.config.dictConfig(log_settings("text", "WARNING"))


def test_lines_logged_during_a_step_carry_its_job_and_name(captured, monkeypatch):
    def noisy(job_id):
        logging.getLogger("container_manager.executors.demo").info("pulling image")
        return "launched"

    monkeypatch.setitem(steps.STEPS, "launch", noisy)
    assert steps.run_step("launch", "1234") == "launched"
    logging.getLogger("container_manager.engine.steps").warning("outside any step")
    inside, outside = (json.loads(line) for line in captured.getvalue().splitlines())
    assert (inside["job_id"], inside["step"], inside["message"]) == (
        "1234",
        "launch",
        "pulling image",
    )
    assert (inside["severity"], inside["logger"]) == ("INFO", "container_manager.executors.demo")
    assert "job_id" not in outside and outside["message"] == "outside any step"


def test_an_explicit_extra_wins_over_the_step_context(captured, monkeypatch):
    def other(job_id):
        logging.getLogger("container_manager.x").info("kick", extra={"job_id": "other"})
        return "ok"

    monkeypatch.setitem(steps.STEPS, "check", other)
    steps.run_step("check", "1234")
    [line] = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert (line["job_id"], line["step"]) == ("other", "check")


def test_an_unknown_log_format_is_refused_by_name():
    with pytest.raises(ImproperlyConfigured, match="CM_LOG_FORMAT must be 'text' or 'json'"):
        log_settings("xml", "INFO")
