"""System checks: dispatch backend options and each host's declared executor_config keys.

Run as ``manage.py check`` would, through Django's check registry.
"""

import pytest
from django.core import checks

from container_manager.models import ExecutorHost


def run_checks(databases=None):
    return checks.run_checks(databases=databases, tags=None)


def ids(messages):
    return {m.id for m in messages if m.id and m.id.startswith("container_manager.")}


def test_bad_local_backend_option_is_reported(settings):
    settings.CONTAINER_MANAGER = {
        "DISPATCH": {
            "BACKEND": "container_manager.dispatch.local.LocalBackend",
            "OPTIONS": {"WORKERS": 0},
        }
    }
    [message] = [m for m in run_checks() if m.id == "container_manager.E004"]
    assert "OPTIONS['WORKERS'] must be at least 1, got 0" in message.msg


def test_missing_cloud_tasks_options_are_reported(settings):
    settings.CONTAINER_MANAGER = {
        "DISPATCH": {"BACKEND": "container_manager.dispatch.cloudtasks.CloudTasksBackend"}
    }
    [message] = [m for m in run_checks() if m.id == "container_manager.E004"]
    assert "PROJECT" in message.msg and "QUEUE" in message.msg


@pytest.mark.django_db
def test_host_with_a_bad_config_key_is_reported_by_name():
    ExecutorHost.objects.create(
        name="typo", executor_type="mock", connection_string="mock://x",
        executor_config={"durration": 1},
    )  # fmt: skip
    ExecutorHost.objects.create(name="fine", executor_type="mock", connection_string="mock://x")
    messages = [m for m in run_checks(databases=["default"]) if m.id == "container_manager.E005"]
    assert [m.msg.split(" (known")[0] for m in messages] == [
        "executor host 'typo': executor_config['durration']: unknown key for the mock executor"
    ]
    assert "container_manager.E005" not in ids(run_checks())  # only with --database


def test_a_bad_network_in_the_webhook_allow_list_is_reported_by_name(settings):
    settings.CONTAINER_MANAGER = {"WEBHOOK_ALLOWED_NETWORKS": ["10.0.0.0/8", "10.0.0.1/8", "x"]}
    messages = [m.msg for m in run_checks() if m.id == "container_manager.E030"]
    assert len(messages) == 2 and all("WEBHOOK_ALLOWED_NETWORKS" in m for m in messages)
    assert "'10.0.0.1/8'" in messages[0] and "'x'" in messages[1]
    settings.CONTAINER_MANAGER = {"WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8"}
    assert [m.id for m in run_checks() if m.id == "container_manager.E030"] == [
        "container_manager.E030"
    ]
