"""Secret references on the cloud platforms: Fargate (moto in server mode) gets a task definition
revision declaring ``secrets``; Cloud Run (the fake) gets secret environment references; Scaleway
(the fake) gets the value the worker resolved, and no row keeps it.
"""

import json
import uuid

import pytest

from container_manager.engine import steps
from container_manager.executors import factory
from container_manager.models import ContainerJob, ExecutorHost
from tests.fakes.aws import ACCOUNT, REGION, moto, moto_server  # noqa: F401 - fixtures
from tests.fakes.cloudrun import JOB_NAME, PROJECT, cloudrun_fake  # noqa: F401 - fixture
from tests.fakes.scaleway import DEFINITION, scaleway_fake  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)

VALUE = "s3cr3t-Value-9f2c"


@pytest.fixture
def stack(moto):  # noqa: F811 - the fixture imported above
    return moto.stack()


def aws_secrets(moto_url):
    """A Secrets Manager secret and an SSM parameter in moto holding VALUE; their ARNs."""
    import boto3

    unique = uuid.uuid4().hex  # the moto server lives for the session: every call needs new names
    sm = boto3.client("secretsmanager", endpoint_url=moto_url, region_name=REGION)
    secret = sm.create_secret(Name=f"app/token-{unique}", SecretString=VALUE)["ARN"]
    ssm = boto3.client("ssm", endpoint_url=moto_url, region_name=REGION)
    name = f"/app/db-{unique}"
    ssm.put_parameter(Name=name, Value=VALUE, Type="SecureString")
    return secret, f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}"


def fargate_job(stack, **env):
    host, _ = ExecutorHost.objects.get_or_create(
        name="fargate", defaults={"executor_type": "fargate", "executor_config": stack}
    )
    return ContainerJob.objects.create_job(
        image="busybox", command="echo hi", docker_host=host, environment_vars=env
    )


def test_fargate_runs_a_revision_that_declares_the_secrets_by_arn(recording, moto, stack):  # noqa: F811
    secret, parameter = aws_secrets(moto.url)
    refs = {"TOKEN": f"secret:{secret}:password::", "DB": f"secret:{parameter}"}
    job = fargate_job(stack, MODE="fast", **refs)
    sent = []
    executor = factory.ExecutorFactory().get_executor(job)
    executor.client("ecs").meta.events.register(
        "before-send", lambda request, **_: sent.append(request.body or b"")
    )
    assert steps.launch(job.pk) == "launched"
    assert len(sent) >= 3  # list_tasks, describe / register_task_definition, run_task
    assert not [body for body in sent if VALUE.encode() in body]
    arn = ContainerJob.objects.get(pk=job.pk).execution_id
    [task] = moto.ecs.describe_tasks(cluster=stack["cluster"], tasks=[arn])["tasks"]
    definition = moto.ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])
    definition = definition["taskDefinition"]
    assert definition["family"].startswith(f"{stack['task_definition']}-cm-")
    [container] = definition["containerDefinitions"]
    assert container["secrets"] == [
        {"name": "DB", "valueFrom": parameter},
        {"name": "TOKEN", "valueFrom": f"{secret}:password::"},
    ]
    assert container["logConfiguration"]["options"]["awslogs-group"] == "cm-jobs"  # copied
    [override] = task["overrides"]["containerOverrides"]
    env = {e["name"]: e["value"] for e in override["environment"]}
    assert env == {"MODE": "fast", "CM_LAUNCH_KEY": f"{job.id.hex}-1"}
    assert VALUE not in json.dumps([task, definition], default=str)


def test_the_same_secrets_reuse_the_revision_across_processes(recording, moto, stack):  # noqa: F811
    secret, _ = aws_secrets(moto.url)
    first = fargate_job(stack, TOKEN=f"secret:{secret}")
    steps.launch(first.pk)
    factory.clear_cache()  # another process: no cache, one describe finds the revision
    second = fargate_job(stack, TOKEN=f"secret:{secret}")
    steps.launch(second.pk)
    arns = [
        moto.ecs.describe_tasks(cluster=stack["cluster"], tasks=[job.execution_id])["tasks"][0][
            "taskDefinitionArn"
        ]
        for job in ContainerJob.objects.filter(pk__in=[first.pk, second.pk])
    ]
    assert arns[0] == arns[1] and arns[0].endswith(":1")
    other = fargate_job(stack, OTHER=f"secret:{secret}")
    steps.launch(other.pk)
    task = moto.ecs.describe_tasks(
        cluster=stack["cluster"], tasks=[ContainerJob.objects.get(pk=other.pk).execution_id]
    )["tasks"][0]
    assert task["taskDefinitionArn"] != arns[0]


def test_a_retried_fargate_launch_finds_its_task(recording, moto, stack):  # noqa: F811
    secret, _ = aws_secrets(moto.url)
    job = fargate_job(stack, TOKEN=f"secret:{secret}")
    steps.launch(job.pk)
    job = ContainerJob.objects.get(pk=job.pk)
    executor = factory.ExecutorFactory().get_executor(job)
    assert executor.launch_job(steps.build_launch_request(job)) == job.execution_id
    assert len(moto.tasks(stack["cluster"], f"cm-{job.id.hex}")) == 1


def test_cloud_run_names_the_secret_and_carries_no_value(recording, cloudrun_fake):  # noqa: F811
    host = ExecutorHost.objects.create(
        name="cloudrun", executor_type="cloudrun", executor_config=cloudrun_fake.config()
    )
    secret = f"projects/{PROJECT}/secrets/api-key"
    job = ContainerJob.objects.create_job(
        image="busybox", command="echo hi", docker_host=host,
        environment_vars={"API_KEY": f"secret:{secret}/versions/7", "MODE": "fast"},
    )  # fmt: skip
    assert steps.launch(job.pk) == "launched"
    [body] = cloudrun_fake.sent("POST", f"{JOB_NAME}:run")
    [container] = body["overrides"]["containerOverrides"]
    by_name = {e["name"]: e for e in container["env"]}
    assert by_name["API_KEY"] == {
        "name": "API_KEY",
        "valueSource": {"secretKeyRef": {"secret": secret, "version": "7"}},
    }
    assert by_name["MODE"] == {"name": "MODE", "value": "fast"}


def test_a_reference_that_reaches_a_platform_unable_to_use_it_fails_value_free(
    recording,
    cloudrun_fake,  # noqa: F811
):
    """A template edited after submit: the launch refuses, naming the variable and the kind."""
    host = ExecutorHost.objects.create(
        name="cloudrun", executor_type="cloudrun", executor_config=cloudrun_fake.config()
    )
    job = ContainerJob.objects.create_job(image="busybox", command="echo hi", docker_host=host)
    ContainerJob.objects.filter(pk=job.pk).update(override_environment="T=secret:env:CM_SECRET_T")
    assert steps.launch(job.pk) == "failed"
    assert ContainerJob.objects.get(pk=job.pk).last_error == (
        "launch failed: T: a secret reference of kind env cannot be used on cloudrun: only "
        "Docker, Scaleway and the mock executor resolve it, in the worker"
    )
    assert cloudrun_fake.sent("POST", f"{JOB_NAME}:run") == []


def test_scaleway_gets_the_value_resolved_in_the_worker_and_no_row_keeps_it(
    recording,
    scaleway_fake,  # noqa: F811
    monkeypatch,
):
    monkeypatch.setenv("CM_SECRET_TOKEN", VALUE)
    host = ExecutorHost.objects.create(
        name="scw", executor_type="scaleway", executor_config=scaleway_fake.config()
    )
    job = ContainerJob.objects.create_job(
        image="busybox", command="true", docker_host=host,
        environment_vars={"TOKEN": "secret:env:CM_SECRET_TOKEN"},
    )  # fmt: skip
    assert steps.launch(job.pk) == "launched"
    [body] = scaleway_fake.sent("POST", f"/job-definitions/{DEFINITION}/start")
    assert body["environment_variables"]["TOKEN"] == VALUE
    stored = ContainerJob.objects.get(pk=job.pk)
    assert VALUE not in json.dumps(
        [stored.override_environment, stored.executor_metadata, stored.last_error]
    )
