"""The model API as API.md shows it: create_job, properties, helpers, bad input named by field."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from container_manager.models import (
    ContainerExecution,
    ContainerJob,
    EnvironmentVariableTemplate,
    ExecutorHost,
)
from container_manager.rules.status import InvalidTransition

pytestmark = pytest.mark.django_db


def field_errors(excinfo) -> dict:
    return excinfo.value.message_dict


class TestCreateJob:
    def test_api_md_example_with_environment_vars(self, mock_host):
        job = ContainerJob.objects.create_job(
            image="python:3.11-slim",
            command="python -c 'print(\"Hello World\")'",
            name="Example Job",
            memory_limit=256,
            cpu_limit=1.0,
            timeout_seconds=600,
            environment_vars={"PYTHONPATH": "/app", "LOG_LEVEL": "INFO"},
        )
        job.refresh_from_db()
        assert job.docker_host == mock_host
        assert job.docker_image == "python:3.11-slim"
        assert job.memory_limit == 256 and job.cpu_limit == 1.0 and job.timeout_seconds == 600
        assert job.get_all_environment_variables() == {"PYTHONPATH": "/app", "LOG_LEVEL": "INFO"}
        assert job.status == "pending"

    def test_template_by_name_and_by_instance_with_overrides(self, mock_host):
        template = EnvironmentVariableTemplate.objects.create(
            name="nodejs-production", environment_variables_text="NODE_ENV=production\nA=1"
        )
        by_name = ContainerJob.objects.create_job(
            image="node:18-alpine", command="npm test",
            environment_template="nodejs-production", environment_vars={"NODE_ENV": "test"},
        )  # fmt: skip
        by_instance = ContainerJob.objects.create_job(
            image="node:18-alpine", environment_template=template, environment_vars={"B": "2"}
        )
        assert by_name.environment_template == template
        assert by_name.get_all_environment_variables() == {"NODE_ENV": "test", "A": "1"}
        assert by_instance.get_all_environment_variables() == {
            "NODE_ENV": "production", "A": "1", "B": "2",
        }  # fmt: skip
        assert list(template.jobs.order_by("created_at")) == [by_name, by_instance]

    def test_override_environment_text_and_vars_merge(self, mock_host):
        job = ContainerJob.objects.create_job(
            image="x", override_environment="A=1\nB=1", environment_vars={"B": "2"}
        )
        assert job.get_override_environment_variables_dict() == {"A": "1", "B": "2"}

    def test_no_host_picks_an_active_host_with_a_free_slot(self, make_mock_host, hold_slots):
        make_mock_host(name="inactive").__class__.objects.filter(name="inactive").update(
            is_active=False
        )
        full = make_mock_host(name="full", max_concurrent_jobs=1)
        hold_slots(full, 1)
        free = make_mock_host(name="free")
        hosts = {ContainerJob.objects.create_job(image="x").docker_host_id for _ in range(20)}
        assert hosts == {free.pk}

    def test_host_choice_follows_weight(self, make_mock_host):
        heavy = make_mock_host(name="heavy")
        light = make_mock_host(name="light")
        ExecutorHost.objects.filter(pk=heavy.pk).update(weight=1000)
        ExecutorHost.objects.filter(pk=light.pk).update(weight=1)
        chosen = [ExecutorHost.objects.choose().pk for _ in range(200)]
        assert chosen.count(heavy.pk) > 180

    def test_network_configuration_and_names(self, mock_host):
        job = ContainerJob.objects.create_job(
            image="nginx:alpine",
            network_configuration=[
                {"network_name": "web-network", "aliases": ["webserver"]},
                {"network_name": "app-network", "aliases": ["nginx"]},
            ],
            working_directory="/usr/share/nginx/html",
        )
        assert job.get_network_names() == ["web-network", "app-network"]

    def test_objects_create_with_image_alias(self, mock_host):
        job = ContainerJob.objects.create(image="python:3.9", command="true", docker_host=mock_host)
        assert ContainerJob.objects.get(pk=job.pk).docker_image == "python:3.9"

    def test_created_job_waits_for_commit_before_sending(
        self, mock_host, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks() as callbacks:
            ContainerJob.objects.create_job(image="x")
        assert len(callbacks) == 1


class TestBadInput:
    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"image": ""}, "docker_image"),
            ({"image": "x", "cpu_limit": 0.05}, "cpu_limit"),
            ({"image": "x", "cpu_limit": 64.0}, "cpu_limit"),
            ({"image": "x", "memory_limit": 4096}, "memory_limit"),
            ({"image": "x", "memory_limit": 1}, "memory_limit"),
            ({"image": "x", "timeout_seconds": 0}, "timeout_seconds"),
            ({"image": "x", "name": "n" * 201}, "name"),
            ({"image": "x" * 501}, "docker_image"),
            ({"image": "x", "override_environment": "NO EQUALS SIGN"}, "override_environment"),
            ({"image": "x", "override_environment": "1BAD=x"}, "override_environment"),
            ({"image": "x", "network_configuration": {"a": 1}}, "network_configuration"),
            ({"image": "x", "network_configuration": [{"aliases": []}]}, "network_configuration"),
            (
                {"image": "x", "network_configuration": [{"network_name": "n", "aliases": "a"}]},
                "network_configuration",
            ),
            ({"image": "x", "max_attempts": 0}, "max_attempts"),
            ({"image": "x", "memory_limit": "lots"}, "memory_limit"),
            ({"image": "x", "timeout_seconds": "soon"}, "timeout_seconds"),
            ({"image": "x", "environment_template": "no-such-template"}, "environment_template"),
        ],
    )
    def test_rule_is_named_and_nothing_is_stored(self, mock_host, kwargs, field):
        with pytest.raises(ValidationError) as excinfo:
            ContainerJob.objects.create_job(**kwargs)
        assert field in field_errors(excinfo)
        assert ContainerJob.objects.count() == 0

    def test_settings_bound_the_memory_limit(self, mock_host, settings):
        settings.CONTAINER_MANAGER = {"MAX_MEMORY_LIMIT_MB": 128}
        with pytest.raises(ValidationError) as excinfo:
            ContainerJob.objects.create_job(image="x", memory_limit=256)
        assert "between 6 and 128 MB" in str(field_errors(excinfo)["memory_limit"])

    def test_inactive_host(self, mock_host):
        ExecutorHost.objects.filter(pk=mock_host.pk).update(is_active=False)
        mock_host.refresh_from_db()
        with pytest.raises(ValidationError) as excinfo:
            ContainerJob.objects.create_job(image="x", docker_host=mock_host)
        assert "inactive" in str(field_errors(excinfo)["docker_host"])

    def test_no_active_host_at_all(self, db):
        with pytest.raises(ValidationError) as excinfo:
            ContainerJob.objects.create_job(image="x")
        assert "docker_host" in field_errors(excinfo)

    def test_unknown_executor_type(self, db):
        host = ExecutorHost(name="h", executor_type="teleporter", connection_string="x://")
        with pytest.raises(ValidationError) as excinfo:
            host.full_clean()
        assert "executor_type" in field_errors(excinfo)
        ExecutorHost.objects.filter(
            pk=ExecutorHost.objects.create(
                name="h2", executor_type="mock", connection_string="mock://"
            ).pk
        ).update(executor_type="teleporter")
        with pytest.raises(ValidationError) as excinfo:
            ContainerJob.objects.create_job(
                image="x", docker_host=ExecutorHost.objects.get(name="h2")
            )
        assert "unknown executor type" in str(field_errors(excinfo)["docker_host"])

    @pytest.mark.parametrize("weight", [0, 1001])
    def test_host_weight_bounds(self, db, weight):
        host = ExecutorHost(name="h", executor_type="mock", connection_string="m://", weight=weight)
        with pytest.raises(ValidationError) as excinfo:
            host.full_clean()
        assert "weight" in field_errors(excinfo)

    def test_bad_template_text(self, db):
        template = EnvironmentVariableTemplate(name="t", environment_variables_text="A=1\nbroken")
        with pytest.raises(ValidationError) as excinfo:
            template.full_clean()
        assert "line 2" in str(field_errors(excinfo)["environment_variables_text"])

    def test_duplicate_host_name(self, mock_host):
        with pytest.raises(ValidationError) as excinfo:
            ExecutorHost(
                name="mock-host", executor_type="mock", connection_string="m://"
            ).full_clean()
        assert "name" in field_errors(excinfo)


class TestStatusIsGuarded:
    def test_save_cannot_change_status(self, mock_host):
        job = ContainerJob.objects.create_job(image="x")
        job.status = "completed"
        with pytest.raises(InvalidTransition, match="not done by save"):
            job.save()
        assert ContainerJob.objects.get(pk=job.pk).status == "pending"

    def test_new_job_must_start_pending(self, mock_host):
        with pytest.raises(InvalidTransition):
            ContainerJob.objects.create(docker_image="x", docker_host=mock_host, status="running")
        assert not ContainerJob.objects.exists()

    def test_stale_save_keeps_results_written_by_steps(self, mock_host):
        job = ContainerJob.objects.create_job(image="x", name="before")
        stale = ContainerJob.objects.get(pk=job.pk)
        ContainerJob.objects.filter(pk=job.pk).update(exit_code=3, stdout_log="kept")
        stale.name = "after"
        stale.save()
        row = ContainerJob.objects.get(pk=job.pk)
        assert (row.name, row.exit_code, row.stdout_log) == ("after", 3, "kept")

    def test_refresh_then_save_is_allowed(self, mock_host):
        job = ContainerJob.objects.create_job(image="x")
        ContainerJob.objects.filter(pk=job.pk).update(status="cancelled")
        job.refresh_from_db()
        job.description = "noted"
        job.save()
        assert ContainerJob.objects.get(pk=job.pk).description == "noted"

    def test_host_slot_count_is_computed_from_the_slot_rows(self, mock_host, hold_slots):
        stale = ExecutorHost.objects.get(pk=mock_host.pk)
        hold_slots(mock_host, 4)
        stale.weight = 5
        stale.save()
        fresh = ExecutorHost.objects.get(pk=mock_host.pk)
        assert (fresh.weight, fresh.current_job_count) == (5, 4)
        assert list(ExecutorHost.objects.filter(pk=mock_host.pk).order_by("current_job_count"))


class TestProperties:
    def test_durations(self):
        start = timezone.now() - timedelta(seconds=30)
        job = ContainerJob(started_at=start, completed_at=start + timedelta(seconds=12))
        assert job.duration == timedelta(seconds=12) == job.runtime_duration
        assert ContainerJob(started_at=start).duration is None
        assert ContainerJob(started_at=start).runtime_duration >= timedelta(seconds=30)

    def test_terminal_statuses(self):
        for status in ("completed", "failed", "timeout", "cancelled"):
            assert ContainerJob(status=status).is_terminal_status
        for status in ("pending", "launching", "running"):
            assert not ContainerJob(status=status).is_terminal_status

    def test_clean_and_parsed_output(self):
        job = ContainerJob(stdout_log='2024-01-01T00:00:00.000000001Z {"ok": true}\n')
        assert job.clean_output_processed == '{"ok": true}\n'
        assert job.parsed_output == {"ok": True}

    def test_execution_identifier(self):
        job = ContainerJob()
        assert job.get_execution_identifier() == ""
        job.set_execution_identifier("abc")
        assert job.get_execution_identifier() == "abc" == job.execution_id

    def test_can_use_executor(self):
        assert ContainerJob(memory_limit=64).can_use_executor("docker")
        assert ContainerJob().can_use_executor("mock")
        assert not ContainerJob().can_use_executor("unknown")

    def test_managers(self, mock_host):
        pending = ContainerJob.objects.create_job(image="x")
        running = ContainerJob.objects.create_job(image="x")
        ContainerJob.objects.filter(pk=running.pk).update(status="running")
        assert list(ContainerJob.objects.pending()) == [pending]
        assert list(ContainerJob.objects.active()) == [running]
        assert set(ContainerJob.objects.live()) == {pending, running}
        assert not ContainerJob.objects.terminal().exists()

    def test_host_methods(self, mock_host, hold_slots):
        assert mock_host.get_display_name() == "mock-host (Mock (tests and demos))"
        assert mock_host.is_available()
        assert mock_host.health_check() is True
        mock_host.refresh_from_db()
        assert mock_host.last_health_ok is True
        hold_slots(mock_host, 9)
        assert mock_host.is_available()
        assert list(ExecutorHost.objects.available()) == [mock_host]
        hold_slots(mock_host, 1)
        mock_host.refresh_from_db()
        assert mock_host.current_job_count == 10
        assert not mock_host.is_available()
        assert not ExecutorHost.objects.available().exists()

    def test_health_check_reports_bad_config(self, make_mock_host):
        host = make_mock_host(nonsense=1)
        assert host.health_check() is False
        host.refresh_from_db()
        assert "nonsense" in host.last_health_error

    def test_execution_properties(self, mock_host):
        job = ContainerJob.objects.create_job(image="x")
        start = timezone.now()
        execution = ContainerExecution.objects.create(
            job=job, attempt=1, execution_id="c1", stdout_log="out\n", stderr_log="err\n",
            started_at=start, finished_at=start + timedelta(seconds=2),
        )  # fmt: skip
        assert execution.container_id == "c1"
        assert execution.logs == "out\nerr\n"
        assert execution.duration == timedelta(seconds=2)
        assert job.containerexecution_set.latest("started_at") == execution
