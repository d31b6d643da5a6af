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


@pytest.fixture
def no_docker_sdk(monkeypatch):
    """``docker`` cannot be imported, as in an install without the ``[docker]`` extra."""
    import sys

    monkeypatch.setitem(sys.modules, "docker", None)


def test_missing_docker_sdk_is_an_error_naming_the_extra_without_database(settings, no_docker_sdk):
    settings.CONTAINER_MANAGER = {}  # the defaults: the worker backend, following Docker
    [message] = [m for m in run_checks() if m.id == "container_manager.E040"]
    assert isinstance(message, checks.Error) and "'docker'" in message.msg
    assert 'pip install "container-manager[docker]"' in message.hint
    settings.CONTAINER_MANAGER = {
        "DISPATCH": {
            "BACKEND": "container_manager.dispatch.worker.WorkerBackend",
            "OPTIONS": {"DOCKER_EVENTS": False},
        }
    }
    assert "container_manager.E040" not in ids(run_checks())


def test_missing_cloud_sdk_of_the_dispatch_backend_names_its_extra(settings, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "boto3", None)
    settings.CONTAINER_MANAGER = {
        "DISPATCH": {
            "BACKEND": "container_manager.dispatch.sqs.SQSBackend",
            "OPTIONS": {"QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/q"},
        }
    }
    [message] = [m for m in run_checks() if m.id == "container_manager.E040"]
    assert 'pip install "container-manager[aws]"' in message.hint


@pytest.mark.django_db
def test_a_docker_host_without_the_docker_sdk_names_the_extra(settings, no_docker_sdk):
    settings.CONTAINER_MANAGER = {"DISPATCH": {"BACKEND": "tests.backends.RecordingBackend"}}
    ExecutorHost.objects.create(name="engine", executor_type="docker")
    assert "container_manager.E041" not in ids(run_checks())  # needs --database
    host_ids = {"container_manager.E005", "container_manager.E041"}
    [message] = [m for m in run_checks(databases=["default"]) if m.id in host_ids]
    assert message.id == "container_manager.E041" and "'engine'" in message.msg
    assert 'pip install "container-manager[docker]"' in message.hint


def test_sqlite_without_immediate_transactions_prints_the_options_to_add(monkeypatch):
    from django.conf import settings

    startproject = {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}
    monkeypatch.setattr(settings, "DATABASES", {"default": startproject})
    [message] = [m for m in run_checks() if m.id == "container_manager.W040"]
    assert isinstance(message, checks.Warning) and "database is locked" in message.msg
    assert message.hint == (
        'Add to its OPTIONS: DATABASES["default"]["OPTIONS"] |= '
        "{'transaction_mode': 'IMMEDIATE'}"
    )
    safe = {**startproject, "OPTIONS": {"transaction_mode": "IMMEDIATE"}}
    monkeypatch.setattr(settings, "DATABASES", {"default": safe})
    assert "container_manager.W040" not in ids(run_checks())


def test_every_sqlite_connection_gets_wal_and_a_long_busy_timeout(tmp_path, django_db_blocker):
    from django.db.utils import ConnectionHandler

    handler = ConnectionHandler(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "p.sqlite3")}}
    )
    connection = handler["default"]
    try:
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            assert cursor.fetchone()[0] == "wal"
            cursor.execute("PRAGMA busy_timeout")
            assert cursor.fetchone()[0] >= 30_000
    finally:
        connection.close()
