"""The Scaleway executor against the fake Serverless Jobs server: what it sends and reads."""

import pytest

from container_manager.engine import steps
from container_manager.executors.factory import ExecutorFactory
from container_manager.models import ContainerJob, ExecutorHost
from tests.fakes.scaleway import DEFINITION, scaleway_fake  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)


def make_job(fake, command="sh -c 'exit 0'", **kwargs):
    host = ExecutorHost.objects.create(
        name="scw", executor_type="scaleway", executor_config=fake.config()
    )
    return ContainerJob.objects.create_job(
        image=fake.image, command=command, docker_host=host, **kwargs
    )


def test_start_sends_args_environment_and_one_replica(recording, scaleway_fake):  # noqa: F811
    job = make_job(scaleway_fake, override_environment="GREETING=hi")
    assert steps.launch(job.pk) == "launched"
    [body] = scaleway_fake.sent("POST", f"/job-definitions/{DEFINITION}/start")
    assert body["args"] == ["sh", "-c", "exit 0"] and body["replicas"] == 1
    assert body["environment_variables"] == {"GREETING": "hi", "CM_LAUNCH_KEY": f"{job.id.hex}-1"}
    [lookup] = [r for r in scaleway_fake.requests if r["path"].endswith("/job-runs")]
    assert lookup["query"]["job_definition_id"] == DEFINITION


def test_harvest_says_logs_are_elsewhere(recording, scaleway_fake):  # noqa: F811
    job = make_job(scaleway_fake)
    steps.launch(job.pk)
    for _ in range(3):
        ContainerJob.objects.filter(pk=job.pk).update(next_check_at=None)
        steps.check(job.pk)
    done = ContainerJob.objects.get(pk=job.pk)
    assert (done.status, done.exit_code, done.stdout_log) == ("completed", 0, "")
    assert "Cockpit" in done.docker_log


def test_an_image_it_cannot_find_fails_the_job_naming_it(recording, scaleway_fake):  # noqa: F811
    scaleway_fake.image = "rg.fr-par.scw.cloud/cm-test/no-such-image:2"
    scaleway_fake.image_missing = True
    job = make_job(scaleway_fake)
    assert steps.launch(job.pk) == "launched"
    for _ in range(3):
        ContainerJob.objects.filter(pk=job.pk).update(next_check_at=None)
        steps.check(job.pk)
    done = ContainerJob.objects.get(pk=job.pk)
    assert (done.status, done.exit_code, done.attempt_count) == ("failed", None, 1)
    image = scaleway_fake.image
    assert done.last_error == (
        f"image '{image}' could not be pulled: Scaleway: image_not_found: image {image} not found"
    )


def test_stop_calls_the_stop_endpoint(recording, scaleway_fake):  # noqa: F811
    job = make_job(scaleway_fake, command="sleep 600")
    steps.launch(job.pk)
    job.cancel()
    for step, job_id, _ in recording.take():
        steps.run_step(step, job_id)
    done = ContainerJob.objects.get(pk=job.pk)
    assert (done.status, done.exit_code) == ("cancelled", None)
    assert len(scaleway_fake.sent("POST", "/stop")) == 1


def test_capabilities_say_what_it_cannot_do(scaleway_fake):  # noqa: F811
    host = ExecutorHost.objects.create(
        name="scw", executor_type="scaleway", executor_config=scaleway_fake.config()
    )
    executor = ExecutorFactory().get_executor(host)
    assert executor.api is executor.api
    capabilities = executor.get_capabilities()
    assert capabilities["supports_logs"] is capabilities["supports_live_logs"] is False
    assert capabilities["supports_resource_limits"] is False
    assert capabilities["supports_image_override"] is False
    assert executor.get_health_status()["healthy"] is True
