"""Secret references on the real Docker engine: the container sees the value; no row, log record,
admin page or API answer does. Worker variables, then Secrets Manager and SSM in moto.
"""

import hashlib
import logging

import pytest
from django.apps import apps
from django.urls import reverse

from container_manager.models import ContainerExecution
from tests.fakes.aws import ACCOUNT, REGION, moto_server  # noqa: F401 - fixture
from tests.test_docker_e2e import finished, run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]

VALUE = "s3cr3t-Value-9f2c"
#: The container prints the digest of what it saw: proof it saw the value, without the value.
DIGEST = hashlib.sha256(VALUE.encode()).hexdigest()
COMMAND = 'sh -c \'printf %s "$TOKEN" | sha256sum; printf %s "$DB" | sha256sum\''


def every_text_in_the_database() -> str:
    """Every column of every row of every installed model, as text."""
    texts = []
    for model in apps.get_models():
        for row in model.objects.all().values_list():
            texts.extend(str(value) for value in row)
    return "\n".join(texts)


def pages_of(client, job) -> str:
    execution = ContainerExecution.objects.filter(job=job).first()
    urls = [
        reverse("admin:container_manager_containerjob_changelist"),
        reverse("admin:container_manager_containerjob_change", args=[job.pk]),
        reverse("admin:container_manager_containerjob_logs", args=[job.pk]),
        reverse("admin:container_manager_containerexecution_change", args=[execution.pk]),
    ]
    pages = [client.get(url) for url in urls]
    assert [page.status_code for page in pages] == [200] * len(pages)
    return "\n".join(page.content.decode() for page in pages)


def assert_seen_but_never_kept(job, admin_client, caplog):
    done = finished(job)
    assert (done.status, done.exit_code) == ("completed", 0), done.last_error
    assert done.clean_output.split() == [DIGEST, "-", DIGEST, "-"]
    assert VALUE not in every_text_in_the_database()
    assert VALUE not in caplog.text
    assert VALUE not in pages_of(admin_client, done)


def test_worker_variables_reach_the_container_only(
    local, docker_host, docker_ready, monkeypatch, caplog, admin_client
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("CM_SECRET_TOKEN", VALUE)
    monkeypatch.setenv("CM_SECRET_DB", VALUE)
    env = {"TOKEN": "secret:env:CM_SECRET_TOKEN", "DB": "secret:env:CM_SECRET_DB"}
    job = run(docker_host, docker_ready, COMMAND, environment_vars=env)
    assert_seen_but_never_kept(job, admin_client, caplog)


def test_a_worker_variable_outside_the_prefix_is_refused_value_free(
    local, docker_host, docker_ready, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DATABASE_URL", VALUE)
    job = run(docker_host, docker_ready, COMMAND, environment_vars={"T": "secret:env:DATABASE_URL"})
    done = finished(job)
    assert done.status == "failed"
    assert "T: its secret reference of kind env was not resolved on docker" in done.last_error
    assert "does not start with SECRET_ENV_PREFIX" in done.last_error
    assert VALUE not in every_text_in_the_database() and VALUE not in caplog.text


def test_secrets_manager_and_ssm_reach_the_container_only(
    local,
    docker_host,
    docker_ready,
    moto_server,  # noqa: F811 - the fixture imported above
    monkeypatch,
    caplog,
    admin_client,
):
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)  # the resolver's boto3 finds moto
    sm = boto3.client("secretsmanager", region_name=REGION)
    secret = sm.create_secret(Name="docker/app", SecretString=f'{{"token": "{VALUE}"}}')["ARN"]
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name="/docker/db", Value=VALUE, Type="SecureString"
    )
    env = {
        "TOKEN": f"secret:{secret}:token",
        "DB": f"secret:arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/docker/db",
    }
    caplog.set_level(logging.DEBUG)  # after the test's own calls, which log the value they send
    job = run(docker_host, docker_ready, COMMAND, environment_vars=env)
    assert_seen_but_never_kept(job, admin_client, caplog)


def test_a_missing_aws_secret_fails_the_launch_naming_the_aws_error(
    local,
    docker_host,
    docker_ready,
    moto_server,  # noqa: F811 - the fixture imported above
    monkeypatch,
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:missing-AbCdEf"
    job = run(docker_host, docker_ready, COMMAND, environment_vars={"TOKEN": f"secret:{arn}"})
    done = finished(job)
    assert done.status == "failed"
    assert done.last_error == (
        "launch failed: TOKEN: its secret reference of kind aws-secretsmanager was not resolved "
        "on docker: AWS answered ResourceNotFoundException"
    )
