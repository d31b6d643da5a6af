"""Images on Cloud Run, Fargate and Scaleway: refused at submit, or mapped to a platform job.

Their runs cannot change the image, so the host's ``executor_config`` names the image of its
platform job (``image``) and maps others (``images``); nothing is asked of the platform at submit.
"""

import pytest
from django.core.exceptions import ValidationError

from container_manager.engine import steps
from container_manager.models import ContainerJob, ExecutorHost
from tests.fakes.aws import moto, moto_server  # noqa: F401 - fixtures
from tests.fakes.cloudrun import JOB, cloudrun_fake  # noqa: F401 - fixture
from tests.fakes.scaleway import DEFINITION, scaleway_fake  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)

#: A valid config per platform, without ``image`` / ``images``; no platform is called.
CONFIGS = {
    "cloudrun": {"project": "p", "region": "r", "job": "app-v1"},
    "fargate": {"cluster": "c", "task_definition": "app-v1", "subnets": ["s"]},
    "scaleway": {"job_definition_id": "def-1", "region": "fr-par"},
}
KINDS = {"cloudrun": "Cloud Run job", "fargate": "task definition", "scaleway": "job definition"}
PLATFORMS = sorted(CONFIGS)


def host_of(platform, **config):
    return ExecutorHost.objects.create(
        name=f"{platform}-host", executor_type=platform,
        executor_config={**CONFIGS[platform], **config},
    )  # fmt: skip


@pytest.mark.parametrize("platform", PLATFORMS)
def test_an_image_no_platform_job_runs_is_refused_naming_the_field(recording, platform):
    host = host_of(platform, image="repo/app:1", images={"repo/app:2": "app-v2"})
    with pytest.raises(ValidationError) as caught:
        ContainerJob.objects.create_job(image="repo/app:3", command="true", docker_host=host)
    [message] = caught.value.message_dict["docker_image"]
    default = CONFIGS[platform][{"cloudrun": "job", "fargate": "task_definition"}.get(
        platform, "job_definition_id")]  # fmt: skip
    assert message == (
        f"docker_image: host '{platform}-host' ({platform}) cannot run 'repo/app:3': its "
        f"{KINDS[platform]} '{default}' runs 'repo/app:1' (executor_config['image']); leave "
        f"docker_image empty for it, or map 'repo/app:3' to a {KINDS[platform]} in "
        "executor_config['images']"
    )
    assert not ContainerJob.objects.exists()
    for accepted in ("repo/app:1", "repo/app:2", ""):
        ContainerJob.objects.create_job(image=accepted, command="true", docker_host=host)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_host_that_names_no_image_takes_only_an_empty_one(recording, platform):
    host = host_of(platform)
    with pytest.raises(ValidationError, match="does not name") as caught:
        ContainerJob.objects.create_job(image="busybox", docker_host=host)
    assert set(caught.value.message_dict) == {"docker_image"}
    job = ContainerJob.objects.create_job(image="", docker_host=host)
    assert job.docker_image == ""


def test_an_empty_image_is_recorded_as_the_platform_jobs(recording):
    job = ContainerJob.objects.create_job(
        image="", docker_host=host_of("cloudrun", image="repo/app:1")
    )
    assert ContainerJob.objects.get(pk=job.pk).docker_image == "repo/app:1"


def test_docker_and_mock_hosts_still_need_an_image(recording, mock_host):
    with pytest.raises(ValidationError, match="an image is required"):
        ContainerJob.objects.create_job(image="", docker_host=mock_host)
    ContainerJob.objects.create_job(image="anything:1", docker_host=mock_host)


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize(
    ("images", "named"),
    [
        ({"repo/app:2": ""}, "executor_config['images']['repo/app:2']: must name a platform job"),
        ({"repo/app:2": 3}, "executor_config['images']['repo/app:2']: must name a platform job"),
        ({" ": "x"}, "executor_config['images']: an image name must not be empty"),
        (["repo/app:2"], "executor_config['images']: expected dict, got list"),
    ],
)
def test_the_image_map_is_checked_at_host_save_naming_the_key(platform, images, named):
    host = ExecutorHost(
        name="h", executor_type=platform, executor_config={**CONFIGS[platform], "images": images}
    )
    with pytest.raises(ValidationError) as caught:
        host.full_clean()
    [message] = caught.value.message_dict["executor_config"]
    assert message.startswith(named)


# -- the mapped platform job is the one started -----------------------------------------------


def finish(job):
    assert steps.launch(job.pk) == "launched"
    for _ in range(3):
        ContainerJob.objects.filter(pk=job.pk).update(next_check_at=None)
        steps.check(job.pk)
    return ContainerJob.objects.get(pk=job.pk)


def test_cloud_run_runs_the_job_the_image_maps_to(recording, cloudrun_fake):  # noqa: F811
    cloudrun_fake.jobs.add("app-v2")
    config = cloudrun_fake.config(images={"repo/app:2": "app-v2"})
    host = ExecutorHost.objects.create(name="cr", executor_type="cloudrun", executor_config=config)
    job = ContainerJob.objects.create_job(image="repo/app:2", command="true", docker_host=host)
    done = finish(job)
    assert done.status == "completed" and "/jobs/app-v2/executions/" in done.execution_id
    assert cloudrun_fake.sent("POST", "/jobs/app-v2:run")
    assert not cloudrun_fake.sent("POST", f"/jobs/{JOB}:run")
    default = finish(ContainerJob.objects.create_job(image="", command="true", docker_host=host))
    assert f"/jobs/{JOB}/executions/" in default.execution_id


def test_scaleway_starts_the_definition_the_image_maps_to(recording, scaleway_fake):  # noqa: F811
    other = "99999999-2222-3333-4444-555555555555"
    scaleway_fake.definitions.add(other)
    config = scaleway_fake.config(images={"repo/app:2": other})
    host = ExecutorHost.objects.create(name="scw", executor_type="scaleway", executor_config=config)
    job = ContainerJob.objects.create_job(image="repo/app:2", command="true", docker_host=host)
    assert finish(job).status == "completed"
    assert scaleway_fake.sent("POST", f"/job-definitions/{other}/start")
    assert not scaleway_fake.sent("POST", f"/job-definitions/{DEFINITION}/start")
    [lookup] = [r for r in scaleway_fake.requests if r["path"].endswith("/job-runs")]
    assert lookup["query"]["job_definition_id"] == other


def test_fargate_runs_the_task_definition_the_image_maps_to(recording, moto):  # noqa: F811
    stack = moto.stack()
    other = moto.stack()  # another family in another cluster: only its definition is used
    config = {**stack, "images": {"repo/app:2": other["task_definition"]}}
    host = ExecutorHost.objects.create(name="fg", executor_type="fargate", executor_config=config)
    job = ContainerJob.objects.create_job(image="repo/app:2", command="true", docker_host=host)
    assert steps.launch(job.pk) == "launched"
    arn = ContainerJob.objects.get(pk=job.pk).execution_id
    [task] = moto.ecs.describe_tasks(cluster=stack["cluster"], tasks=[arn])["tasks"]
    assert f":task-definition/{other['task_definition']}:" in task["taskDefinitionArn"]


def test_a_launch_whose_image_the_host_no_longer_maps_fails_naming_the_key(
    recording,
    cloudrun_fake,  # noqa: F811
):
    config = cloudrun_fake.config(images={"repo/app:2": "app-v2"})
    host = ExecutorHost.objects.create(name="cr", executor_type="cloudrun", executor_config=config)
    job = ContainerJob.objects.create_job(image="repo/app:2", command="true", docker_host=host)
    ExecutorHost.objects.filter(pk=host.pk).update(executor_config=cloudrun_fake.config())
    assert steps.launch(job.pk) == "failed"
    last_error = ContainerJob.objects.get(pk=job.pk).last_error
    assert "executor_config['images']: no Cloud Run job runs 'repo/app:2' any more" in last_error
    assert not cloudrun_fake.sent("POST", ":run")
