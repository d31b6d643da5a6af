"""The Cloud Run executor against the fake REST server: what it sends, and what it reads back."""

import pytest

from container_manager.engine import steps
from container_manager.executors.factory import ExecutorFactory
from container_manager.models import ContainerJob, ExecutorHost
from tests.fakes.cloudrun import JOB_NAME, cloudrun_fake  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)


def make_job(fake, command="sh -c 'echo hello; echo oops >&2'", **kwargs):
    host = ExecutorHost.objects.create(
        name="cloudrun", executor_type="cloudrun", executor_config=fake.config()
    )
    return ContainerJob.objects.create_job(
        image=fake.image, command=command, docker_host=host, **kwargs
    )


def test_run_sends_overrides_and_never_waits(recording, cloudrun_fake):  # noqa: F811
    job = make_job(cloudrun_fake, override_environment="GREETING=hi", timeout_seconds=120)
    assert steps.launch(job.pk) == "launched"
    [body] = cloudrun_fake.sent("POST", f"{JOB_NAME}:run")
    overrides = body["overrides"]
    assert overrides["taskCount"] == 1 and overrides["timeout"] == "180s"  # + 60 s margin
    [container] = overrides["containerOverrides"]
    assert container["args"] == ["sh", "-c", "echo hello; echo oops >&2"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {"GREETING": "hi", "CM_LAUNCH_KEY": f"{job.id.hex}-1"}
    stored = ContainerJob.objects.get(pk=job.pk).execution_id
    assert stored.startswith(f"{JOB_NAME}/executions/")
    # The launch asked for the execution list (idempotency) and ran once; no operation polling.
    assert not [r for r in cloudrun_fake.requests if "/operations/" in r["path"]]


def test_harvest_splits_stdout_and_stderr_from_cloud_logging(recording, cloudrun_fake):  # noqa: F811
    job = make_job(cloudrun_fake)
    steps.launch(job.pk)
    for _ in range(3):
        ContainerJob.objects.filter(pk=job.pk).update(next_check_at=None)
        steps.check(job.pk)
    done = ContainerJob.objects.get(pk=job.pk)
    assert (done.status, done.exit_code) == ("completed", 0)
    assert done.clean_output == "hello\n" and done.stderr_log.endswith(" oops\n")
    [query] = cloudrun_fake.sent("POST", "/v2/entries:list")
    short = done.execution_id.rsplit("/", 1)[-1]
    assert f'labels."run.googleapis.com/execution_name"="{short}"' in query["filter"]
    assert 'timestamp>="' in query["filter"]


def test_a_running_execution_logs_are_read_live_from_cloud_logging(recording, cloudrun_fake):  # noqa: F811
    job = make_job(cloudrun_fake, command="sh -c 'echo hello; echo oops >&2; sleep 600'")
    steps.launch(job.pk)
    running = ContainerJob.objects.get(pk=job.pk)
    logs = running.read_logs()
    assert (logs.status, logs.source, logs.complete) == ("running", "live", False)
    assert logs.stdout.text.endswith(" hello\n") and logs.stderr.text.endswith(" oops\n")
    assert running.read_logs(logs.stdout.offset, logs.stderr.offset).stdout.text == ""


def test_cancel_calls_cancel_execution(recording, cloudrun_fake):  # noqa: F811
    job = make_job(cloudrun_fake, command="sleep 600")
    steps.launch(job.pk)
    job.cancel()
    for step, job_id, _ in recording.take():
        steps.run_step(step, job_id)
    assert ContainerJob.objects.get(pk=job.pk).status == "cancelled"
    assert len(cloudrun_fake.sent("POST", ":cancel")) == 1


def test_an_image_it_cannot_pull_fails_the_job_naming_it(recording, cloudrun_fake):  # noqa: F811
    cloudrun_fake.image = "europe-docker.pkg.dev/cm-test/jobs/no-such-image:2"
    cloudrun_fake.image_missing = True
    job = make_job(cloudrun_fake)
    assert steps.launch(job.pk) == "launched"
    for _ in range(3):
        ContainerJob.objects.filter(pk=job.pk).update(next_check_at=None)
        steps.check(job.pk)
    done = ContainerJob.objects.get(pk=job.pk)
    assert (done.status, done.exit_code, done.attempt_count) == ("failed", None, 1)
    assert done.last_error == (
        f"image '{cloudrun_fake.image}' could not be pulled: "
        f"Cloud Run: Image '{cloudrun_fake.image}' not found."
    )


def test_missing_job_is_a_configuration_error(recording, cloudrun_fake):  # noqa: F811
    host = ExecutorHost.objects.create(
        name="cr", executor_type="cloudrun", executor_config=cloudrun_fake.config(job="nope")
    )
    job = ContainerJob.objects.create_job(image="", command="true", docker_host=host)
    assert steps.launch(job.pk) == "failed"
    assert "not found" in ContainerJob.objects.get(pk=job.pk).last_error


def test_capabilities_and_one_client_per_host(cloudrun_fake):  # noqa: F811
    host = ExecutorHost.objects.create(
        name="cr", executor_type="cloudrun", executor_config=cloudrun_fake.config()
    )
    executor = ExecutorFactory().get_executor(host)
    assert executor.client("jobs") is executor.client("jobs")
    capabilities = executor.get_capabilities()
    assert capabilities["supports_idempotent_launch"] and not capabilities["supports_networking"]
    assert capabilities["supports_resource_limits"] is False
