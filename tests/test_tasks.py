"""The Django tasks backend without a container engine: enqueue, validation, results, signals.

Jobs run on mock hosts whose output is what the runner would print; the runner is called in-process.
"""

import importlib
import json
from datetime import timedelta

import django
import pytest

pytest.importorskip(
    "container_manager.tasks.compat",
    reason="needs Django 6 or, on Django 5.2, django-tasks: pip install 'container_manager[tasks]'",
)
from django.core import checks
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction
from django.utils import timezone

from container_manager.models import ContainerJob, EnvironmentVariableTemplate
from container_manager.rules import secrets, taskwire
from container_manager.rules import status as st
from container_manager.rules.envtext import format_env_text
from container_manager.run_task import EXIT_BAD_PAYLOAD, EXIT_INTERRUPTED, EXIT_TASK_FAILED, main
from container_manager.tasks import results
from container_manager.tasks.backend import RUNNER_COMMAND, ContainerTaskBackend
from container_manager.tasks.compat import (
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task,
    task_backends,
    task_enqueued,
    task_finished,
    task_started,
)
from container_manager.tasks.exceptions import ContainerTaskError, TaskCancelled, TaskTimedOut

IMAGE = "registry.example.com/app:1"


def tasks_setting(**options):
    return {
        "default": {
            "BACKEND": "container_manager.tasks.ContainerTaskBackend",
            "OPTIONS": {"image": IMAGE, **options},
        }
    }


@pytest.fixture
def examples(settings, make_mock_host):
    """``TASKS`` names the container backend on a mock host; returns the example tasks module."""
    host = make_mock_host(name="tasks-default")
    make_mock_host(name="tasks-big")
    settings.TASKS = tasks_setting(host=host.name, queue_hosts={"big": "tasks-big"})
    return importlib.import_module("tests.task_examples")


@pytest.fixture
def signals():
    """Every framework signal received, in order, as ``(name, sender, status)``."""
    received = []

    def receiver(name):
        def record(sender, task_result, **kwargs):
            received.append((name, sender, task_result.status, task_result.id))

        return record

    receivers = {
        signal: receiver(name)
        for signal, name in (
            (task_enqueued, "enqueued"),
            (task_started, "started"),
            (task_finished, "finished"),
        )
    }
    for signal, function in receivers.items():
        signal.connect(function)
    yield received
    for signal, function in receivers.items():
        signal.disconnect(function)


def runner_output(value):
    return taskwire.result_line(value) + "\n"


# -- enqueue ------------------------------------------------------------------------------


def test_enqueue_stores_a_pending_job_whose_id_is_the_result_id(
    recording, examples, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        result = examples.add.enqueue(2, 3)
    job = ContainerJob.objects.get(pk=result.id)
    assert (job.status, job.docker_image, job.command) == (st.PENDING, IMAGE, RUNNER_COMMAND)
    assert job.docker_host.name == "tasks-default"
    assert job.name == "task tests.task_examples.add"
    environment = job.get_all_environment_variables()
    payload = taskwire.decode_payload(environment[taskwire.PAYLOAD_ENV])
    assert (payload["task"], payload["args"], payload["kwargs"]) == (
        "tests.task_examples.add",
        [2, 3],
        {},
    )
    assert payload["id"] == result.id and payload["backend"] == "default"
    assert environment["DJANGO_SETTINGS_MODULE"] == "functions.settings"
    assert (result.status, result.attempts, result.args) == (TaskResultStatus.READY, 0, [2, 3])
    assert result.enqueued_at == job.created_at and result.started_at is None
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value
    again = examples.add.get_result(result.id)
    assert (again.id, again.task.func, again.status) == (result.id, examples.add.func, "READY")
    assert ("launch", result.id, 0.0) in recording.messages


def test_per_task_resources_priority_and_queue_host(recording, examples, db):
    result = examples.sized.using(queue_name="big").enqueue()
    job = ContainerJob.objects.get(pk=result.id)
    assert (job.memory_limit, job.cpu_limit, job.priority) == (96, 0.5, 5)
    assert job.docker_host.name == "tasks-big"
    assert job.timeout_seconds == 3600  # the model's default: neither the task nor OPTIONS set one
    assert examples.sleep.timeout_seconds == 3
    assert ContainerJob.objects.get(pk=examples.sleep.enqueue(1).id).timeout_seconds == 3


def test_using_overrides_resources_and_options_fill_the_rest(recording, examples, settings, db):
    settings.TASKS = tasks_setting(host="tasks-default", memory_limit=64, timeout_seconds=30)
    custom = examples.add.using(image="other:2", cpu_limit=2.0, priority=-3)
    job = ContainerJob.objects.get(pk=custom.enqueue(1, 1).id)
    assert (job.docker_image, job.cpu_limit, job.priority) == ("other:2", 2.0, -3)
    assert (job.memory_limit, job.timeout_seconds) == (64, 30)
    with pytest.raises(TypeError, match="unexpected options: gpu"):
        examples.add.using(gpu=1)


def test_run_after_defers_the_launch(recording, examples, django_capture_on_commit_callbacks):
    later = timezone.now() + timedelta(minutes=5)
    with django_capture_on_commit_callbacks(execute=True):
        result = examples.add.using(run_after=later).enqueue(1, 2)
    job = ContainerJob.objects.get(pk=result.id)
    assert job.run_after == later
    [delayed] = [m for m in recording.messages if m[0] == "launch" and m[2] > 0]
    assert 290 < delayed[2] <= 300
    from container_manager.engine import steps

    assert steps.launch(job.pk) == "not-due"


def test_enqueue_in_a_rolled_back_transaction_never_runs(
    recording, examples, signals, db, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            result = examples.add.enqueue(2, 3)
            raise RuntimeError("roll back")
        kept = examples.add.enqueue(4, 5)
    assert not ContainerJob.objects.filter(pk=result.id).exists()
    assert [s[0] for s in signals] == ["enqueued"] and signals[0][3] == kept.id
    assert signals[0][1] is ContainerTaskBackend
    assert [m[1] for m in recording.messages if m[0] == "launch"] == [kept.id]


def test_environment_template_is_the_base_and_may_name_the_settings(recording, settings, examples):
    EnvironmentVariableTemplate.objects.create(
        name="task-env", environment_variables_text="DJANGO_SETTINGS_MODULE=app.settings\nMODE=x"
    )
    settings.TASKS = tasks_setting(host="tasks-default", environment_template="task-env")
    job = ContainerJob.objects.get(pk=examples.add.enqueue(1, 1).id)
    environment = job.get_all_environment_variables()
    assert (environment["DJANGO_SETTINGS_MODULE"], environment["MODE"]) == ("app.settings", "x")
    settings.TASKS = tasks_setting(host="tasks-default", environment_template="missing")
    with pytest.raises(ValidationError, match="no template named 'missing'"):
        examples.add.enqueue(1, 1)


# -- bad input --------------------------------------------------------------------------------


def test_payload_over_the_limit_is_refused_and_nothing_is_stored(recording, examples, settings):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "TASK_PAYLOAD_MAX_BYTES": 200}
    with pytest.raises(ValidationError, match="TASK_PAYLOAD_MAX_BYTES allows 200"):
        examples.add.enqueue("x" * 300, "y")
    assert ContainerJob.objects.count() == 0
    with pytest.raises(TypeError, match="arguments must be JSON values"):
        examples.add.enqueue(object(), 1)


def test_unknown_queue_and_host_are_named(recording, examples, settings):
    with pytest.raises(InvalidTask, match="Queue 'nowhere' is not valid"):
        examples.add.using(queue_name="nowhere")
    settings.TASKS = tasks_setting(host="no-such-host")
    with pytest.raises(ValidationError, match="no ExecutorHost has that name"):
        examples.add.enqueue(1, 1)
    assert ContainerJob.objects.count() == 0


def test_functions_must_be_module_level_and_resources_valid(examples):
    def local(a):
        return a

    with pytest.raises(InvalidTask, match="module level"):
        task()(local)
    with pytest.raises(InvalidTask, match="'memory_limit' must be a positive whole number"):
        task(memory_limit=0.5)(examples.add.func)
    with pytest.raises(InvalidTask, match="'timeout_seconds'"):
        examples.add.using(timeout_seconds=-1)
    with pytest.raises(InvalidTask, match="first argument of 'context'"):
        task(takes_context=True)(examples.add.func)


def test_options_are_checked(settings):
    settings.TASKS = {
        "default": {
            "BACKEND": "container_manager.tasks.ContainerTaskBackend",
            "QUEUES": ["default"],
            "OPTIONS": {"memory_limit": "lots", "queue_hosts": {"gpu": "g"}, "hots": "x"},
        }
    }
    backend = task_backends["default"]
    messages = [m.msg for m in backend.check()]
    assert {m.id for m in backend.check()} == {"container_manager.E101"}
    assert any("'hots' is not an option" in m for m in messages)
    assert any("'image' is required" in m for m in messages)
    assert any(
        "'memory_limit' must be a positive whole number (MB), not 'lots'" in m for m in messages
    )
    assert any("queue 'gpu', which QUEUES does not list" in m for m in messages)
    with pytest.raises(ImproperlyConfigured, match="TASKS\\['default'\\]"):
        backend.enqueue(task_backends["default"].task_class(func=results.payload_of), (), {})
    if django.VERSION >= (6, 0):  # on 5.2 the backport's app (in INSTALLED_APPS) runs it
        assert "container_manager.E101" in {m.id for m in checks.run_checks(databases=[])}
    settings.TASKS = tasks_setting(host="h", queue_hosts={"big": "b"})
    assert task_backends["default"].check() == []


def test_payload_is_masked_whatever_the_patterns(recording, examples, settings):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "SECRET_NAME_PATTERNS": []}
    job = ContainerJob.objects.get(pk=examples.add.enqueue("private", 1).id)
    shown = secrets.mask_env_text(job.override_environment)
    assert "private" in job.override_environment and "private" not in shown
    assert f"{taskwire.PAYLOAD_ENV}={secrets.MASK}" in shown


# -- results from the job's rows --------------------------------------------------------------


def run_on(examples, settings, django_capture_on_commit_callbacks, host, task_, *args):
    settings.TASKS = tasks_setting(host=host.name)
    with django_capture_on_commit_callbacks(execute=True):
        result = task_.enqueue(*args)
    result.refresh()
    return result


def test_success_reads_the_marked_line(
    immediate, examples, settings, make_mock_host, signals, django_capture_on_commit_callbacks
):
    host = make_mock_host(stdout="working\n" + runner_output({"sum": 5}))
    result = run_on(
        examples, settings, django_capture_on_commit_callbacks, host, examples.add, 2, 3
    )
    assert (result.status, result.return_value, result.errors) == ("SUCCESSFUL", {"sum": 5}, [])
    assert result.attempts == 1 and len(result.worker_ids) == 1
    assert result.enqueued_at <= result.started_at <= result.last_attempted_at <= result.finished_at
    assert [(name, status) for name, _, status, _ in signals] == [
        ("enqueued", "READY"),
        ("started", "RUNNING"),
        ("finished", "SUCCESSFUL"),
    ]
    assert all(sender is ContainerTaskBackend and rid == result.id for _, sender, _, rid in signals)


@pytest.mark.django_db(transaction=True)
def test_enqueued_is_sent_before_the_task_runs(
    immediate, examples, settings, make_mock_host, signals
):
    host = make_mock_host(stdout=runner_output(5))
    settings.TASKS = tasks_setting(host=host.name)
    result = examples.add.enqueue(2, 3)  # no outer transaction: the launch runs as enqueue commits
    assert [(name, status, rid) for name, _, status, rid in signals] == [
        ("enqueued", "READY", result.id),
        ("started", "RUNNING", result.id),
        ("finished", "SUCCESSFUL", result.id),
    ]


def test_raised_exception_becomes_the_error(
    immediate, examples, settings, make_mock_host, django_capture_on_commit_callbacks
):
    stderr = "Traceback...\n" + taskwire.error_line(
        "builtins.ValueError", "Traceback\nValueError: boom"
    )
    host = make_mock_host(exit_code=EXIT_TASK_FAILED, stderr=stderr + "\n")
    result = run_on(
        examples, settings, django_capture_on_commit_callbacks, host, examples.fail, "boom"
    )
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class is ValueError and error.traceback.endswith("ValueError: boom")
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value


def test_last_error_names_the_raised_exception_bounded_by_the_setting(
    immediate, examples, settings, make_mock_host, capsys, django_capture_on_commit_callbacks
):
    assert main({taskwire.PAYLOAD_ENV: payload("fail", "bad input")}) == EXIT_TASK_FAILED
    stderr = capsys.readouterr().err  # what the runner in the container prints
    host = make_mock_host(exit_code=EXIT_TASK_FAILED, stderr=stderr)
    result = run_on(
        examples, settings, django_capture_on_commit_callbacks, host, examples.fail, "bad input"
    )
    job = ContainerJob.objects.get(pk=result.id)
    assert job.last_error == "ValueError: bad input (exited with code 1)"
    assert job.containerexecution_set.get().error == job.last_error
    [error] = result.errors
    assert error.exception_class is ValueError
    assert error.traceback.endswith("ValueError: bad input\n")

    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "TASK_ERROR_MAX_CHARS": 16}
    assert main({taskwire.PAYLOAD_ENV: payload("fail", "long\n  message " * 9)}) == 1
    host = make_mock_host(exit_code=EXIT_TASK_FAILED, stdout=capsys.readouterr().err)
    result = run_on(examples, settings, django_capture_on_commit_callbacks, host, examples.fail)
    assert ContainerJob.objects.get(pk=result.id).last_error == (
        "ValueError: lon… (exited with code 1)"
    )


def test_a_job_that_is_no_task_keeps_its_exit_reason_whatever_it_prints(
    immediate, make_mock_host, django_capture_on_commit_callbacks
):
    line = taskwire.error_line("builtins.ValueError", "", "ValueError: printed")
    host = make_mock_host(exit_code=1, stderr=line + "\n")
    with django_capture_on_commit_callbacks(execute=True):
        job = ContainerJob.objects.create_job(image="x", docker_host=host)
    job.refresh_from_db()
    assert (job.status, job.last_error) == (st.FAILED, "exited with code 1")


def test_last_error_of_a_task_run_by_the_process_executor(
    immediate, examples, settings, django_capture_on_commit_callbacks
):
    from container_manager.models import ExecutorHost

    settings.CONTAINER_MANAGER = {
        **settings.CONTAINER_MANAGER,
        "EXECUTORS": {"process": "tests.process_executor.ProcessExecutor"},
    }
    host = ExecutorHost.objects.create(name="tasks-process", executor_type="process")
    EnvironmentVariableTemplate.objects.create(
        name="task-child", environment_variables_text="DJANGO_SETTINGS_MODULE=tests.task_settings"
    )
    settings.TASKS = tasks_setting(host=host.name, environment_template="task-child")
    with django_capture_on_commit_callbacks(execute=True):
        result = examples.fail.enqueue("bad input")
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    job = ContainerJob.objects.get(pk=result.id)
    assert job.last_error == "ValueError: bad input (exited with code 1)"
    assert [e.exception_class for e in result.errors] == [ValueError]


def test_exception_on_a_platform_that_mixes_the_streams(
    immediate, examples, settings, make_mock_host, django_capture_on_commit_callbacks
):
    stdout = "log\n" + taskwire.error_line("builtins.KeyError", "KeyError: 'k'") + "\n"
    host = make_mock_host(exit_code=EXIT_TASK_FAILED, stdout=stdout)
    result = run_on(
        examples, settings, django_capture_on_commit_callbacks, host, examples.fail, "x"
    )
    assert [e.exception_class for e in result.errors] == [KeyError]


def test_exit_zero_without_a_result_line_fails(
    immediate, examples, settings, make_mock_host, django_capture_on_commit_callbacks
):
    host = make_mock_host(stdout="no marker\n", stderr="some warning\n")
    result = run_on(
        examples, settings, django_capture_on_commit_callbacks, host, examples.add, 1, 1
    )
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class is ContainerTaskError
    assert "without a result line" in error.traceback and "some warning" in error.traceback


@pytest.mark.parametrize(
    ("status", "reason", "exception"),
    [
        (st.TIMEOUT, "timed out after 3 seconds; the container was stopped", TaskTimedOut),
        (st.CANCELLED, "cancelled on request", TaskCancelled),
        (st.FAILED, "launch failed: image not found", ContainerTaskError),
    ],
)
def test_ends_without_the_runner_name_the_reason(recording, examples, status, reason, exception):
    result = examples.add.enqueue(1, 1)
    # The row as the steps leave it; the status machine is exercised by the engine tests.
    ContainerJob.objects.filter(pk=result.id).update(
        status=status, last_error=reason, completed_at=timezone.now()
    )
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.finished_at is not None
    [error] = result.errors
    assert error.exception_class is exception and error.traceback.startswith(reason)


def test_get_result_of_something_else_does_not_exist(recording, examples, mock_host):
    backend = task_backends["default"]
    plain = ContainerJob.objects.create_job(image="x", docker_host=mock_host)
    for missing in ("not-a-uuid", str(plain.pk), "00000000-0000-0000-0000-000000000000"):
        with pytest.raises(TaskResultDoesNotExist):
            backend.get_result(missing)
    other = ContainerJob.objects.get(pk=examples.add.enqueue(1, 1).id)
    with pytest.raises(Exception, match="does not match"):
        examples.fail.get_result(str(other.pk))


def test_get_result_equals_what_enqueue_returned(recording, examples, settings):
    settings.TASKS = {
        **tasks_setting(host="tasks-default"),
        "other": tasks_setting(host="tasks-big")["default"],
    }
    later = timezone.now() + timedelta(minutes=5)
    custom = examples.sized.using(backend="other", run_after=later, image="other:2", cpu_limit=2.0)
    enqueued = custom.enqueue()
    again = task_backends["other"].get_result(enqueued.id)
    assert again == enqueued
    assert (again.task.backend, again.task.run_after, again.task.priority) == ("other", later, 5)
    assert (again.task.image, again.task.cpu_limit, again.task.memory_limit) == ("other:2", 2.0, 96)
    again.refresh()  # on the task's own backend
    assert again == enqueued


def test_get_result_of_a_payload_without_fields(recording, examples):
    result = examples.sized.using(priority=7).enqueue()
    job = ContainerJob.objects.get(pk=result.id)
    payload = json.loads(job.get_all_environment_variables()[taskwire.PAYLOAD_ENV])
    del payload["fields"]  # as written before the payload kept the task's fields
    job.override_environment = format_env_text({taskwire.PAYLOAD_ENV: json.dumps(payload)})
    job.save(update_fields=["override_environment"])
    again = examples.sized.get_result(result.id)
    assert (again.task.priority, again.task.memory_limit, again.args) == (7, 96, [])


def test_status_map_covers_every_job_status():
    assert set(results.STATUS_MAP) == {value for value, _ in st.STATUS_CHOICES}


# -- the runner, in-process --------------------------------------------------------------------


def payload(name, *args, context=False):
    return taskwire.encode_payload(
        task_path=f"tests.task_examples.{name}", backend="default", queue="default",
        args=list(args), kwargs={}, takes_context=context, result_id="r-1",
    )  # fmt: skip


def test_runner_prints_one_marked_line(examples, capsys):
    assert main({taskwire.PAYLOAD_ENV: payload("add", 2, 3)}) == 0
    out = capsys.readouterr().out
    assert taskwire.read_result(out) == (True, 5)
    assert out.rstrip("\n").splitlines()[-1] == taskwire.result_line(5)


def test_runner_reports_exceptions_and_bad_payloads(examples, capsys):
    assert main({taskwire.PAYLOAD_ENV: payload("fail", "boom")}) == EXIT_TASK_FAILED
    error = taskwire.read_error(capsys.readouterr().err)
    assert error["exception_class_path"] == "builtins.ValueError"
    assert "ValueError: boom" in error["traceback"] and "task_examples.py" in error["traceback"]
    assert main({taskwire.PAYLOAD_ENV: payload("unserialisable")}) == EXIT_TASK_FAILED
    assert (
        taskwire.read_error(capsys.readouterr().err)["exception_class_path"] == "builtins.TypeError"
    )
    assert main({}) == EXIT_BAD_PAYLOAD
    assert "not JSON" in taskwire.read_error(capsys.readouterr().err)["traceback"]
    bad = json.loads(payload("add"))
    bad["task"] = "container_manager.rules.taskwire.result_line"
    assert main({taskwire.PAYLOAD_ENV: json.dumps(bad)}) == EXIT_TASK_FAILED
    assert "is not a task" in taskwire.read_error(capsys.readouterr().err)["traceback"]


def test_an_interrupted_task_reports_keyboard_interrupt(
    immediate, examples, settings, make_mock_host, capsys, django_capture_on_commit_callbacks
):
    try:
        code = main({taskwire.PAYLOAD_ENV: payload("interrupted")})
    except KeyboardInterrupt:
        pytest.fail("the interrupt left the runner without its marked error line")
    stderr = capsys.readouterr().err
    assert code == EXIT_INTERRUPTED == 130  # what a shell reports for SIGINT
    host = make_mock_host(exit_code=code, stderr=stderr)
    result = run_on(
        examples, settings, django_capture_on_commit_callbacks, host, examples.interrupted
    )
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class is KeyboardInterrupt
    assert error.traceback.endswith("KeyboardInterrupt: stop\n")


def test_runner_gives_context_and_runs_coroutines(examples, capsys):
    environ = {taskwire.PAYLOAD_ENV: payload("whoami", "hi", context=True), "CM_LAUNCH_KEY": "ab-2"}
    assert main(environ) == 0
    assert taskwire.read_result(capsys.readouterr().out)[1] == {
        "id": "r-1", "attempt": 2, "greeting": "hi",
    }  # fmt: skip
    assert main({taskwire.PAYLOAD_ENV: payload("wait_and_echo", [1, "a"])}) == 0
    assert taskwire.read_result(capsys.readouterr().out) == (True, [1, "a"])


def test_limits_a_host_cannot_honour_are_refused_naming_the_field(recording, examples, settings):
    from container_manager.models import ExecutorHost

    ExecutorHost.objects.create(
        name="run-jobs", executor_type="cloudrun", connection_string="projects/p/locations/r"
    )
    settings.TASKS = tasks_setting(host="run-jobs")
    with pytest.raises(ValidationError, match="memory_limit"):
        examples.sized.enqueue()
    assert ContainerJob.objects.count() == 0
