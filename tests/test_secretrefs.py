"""Secret references: their syntax, refusal at submit and template save, masking, and the built-in
resolver's limits (worker variables by prefix, files in one directory), on the mock executor.
"""

import json
import logging

import pytest
from django.core import checks
from django.core.exceptions import ValidationError
from django.urls import reverse

from container_manager.engine import steps
from container_manager.executors import secretresolver
from container_manager.models import ContainerJob, EnvironmentVariableTemplate, ExecutorHost
from container_manager.rules import secretrefs
from container_manager.rules.secrets import MASK, mask_env, mask_env_text

pytestmark = pytest.mark.django_db

SM_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-AbCdEf"
SSM_ARN = "arn:aws:ssm:eu-west-1:123456789012:parameter/app/db/password"
GCP = "projects/my-project/secrets/api-key/versions/3"
VALUE = "s3cr3t-Value-9f2c"


@pytest.mark.parametrize(
    ("text", "kind", "secret_id"),
    [
        (SM_ARN, "aws-secretsmanager", SM_ARN),
        (f"{SM_ARN}:password::", "aws-secretsmanager", SM_ARN),
        (SSM_ARN, "aws-ssm", "/app/db/password"),
        ("arn:aws:ssm:us-east-1:123456789012:parameter/plain", "aws-ssm", "plain"),
        (GCP, "gcp-secretmanager", "projects/my-project/secrets/api-key"),
        ("env:CM_SECRET_TOKEN", "env", "CM_SECRET_TOKEN"),
        ("file:token.txt", "file", "token.txt"),
    ],
)
def test_each_reference_kind_parses(text, kind, secret_id):
    ref = secretrefs.parse(f"secret:{text}")
    assert (ref.kind, ref.secret_id, ref.text) == (kind, secret_id, text)


def test_secrets_manager_selectors_and_their_value_from():
    ref = secretrefs.parse(f"secret:{SM_ARN}:password")
    assert (ref.json_key, ref.version_stage, ref.version) == ("password", "", "")
    assert ref.value_from == f"{SM_ARN}:password::" and ref.region == "eu-west-1"
    assert secretrefs.parse(f"secret:{SSM_ARN}").value_from == SSM_ARN


@pytest.mark.parametrize(
    "bad",
    [
        "secret:", "secret:hunter2", "secret:env:", "secret:env:1ABC", "secret:file:../x",
        "secret:file:a/b", "secret:file:..", "secret:projects/p/secrets/s",
        "secret:arn:aws:secretsmanager:eu-west-1:12:secret:x",
        f"secret:{SM_ARN}:a:b:c:d", "secret:arn:aws:ssm:eu-west-1:123456789012:parameter/",
    ],
)  # fmt: skip
def test_malformed_references_are_refused_with_a_fixed_text_that_never_echoes_them(bad):
    with pytest.raises(ValueError) as caught:
        secretrefs.parse(bad)
    fixed = [f"is written {syntax}" for syntax in secretrefs.SYNTAX.values()]
    fixed += ["not a secret reference: expected one of", "secret:env:<NAME> needs a variable",
              "secret:file:<file name> needs a plain file name"]  # fmt: skip
    assert any(text in str(caught.value) for text in fixed), caught.value


def test_ordinary_values_are_not_references():
    assert secretrefs.parse("postgres://u:p@h/db") is None
    assert secretrefs.references({"A": "x", "B": "secrets:env:X"}) == {}


def test_a_malformed_reference_is_refused_at_submit_naming_field_and_variable(mock_host):
    with pytest.raises(ValidationError) as caught:
        ContainerJob.objects.create_job(
            image="x", docker_host=mock_host, environment_vars={"TOKEN": "secret:file:../etc"}
        )
    [message] = caught.value.message_dict["environment_vars"]
    assert message.startswith("environment_vars: TOKEN: secret:file:<file name> needs a plain")
    with pytest.raises(ValidationError) as caught:
        ContainerJob.objects.create_job(
            image="x", docker_host=mock_host, override_environment="TOKEN=secret:nope"
        )
    [message] = caught.value.message_dict["override_environment"]
    assert message.startswith("TOKEN: not a secret reference")
    assert not ContainerJob.objects.exists()


def test_a_malformed_reference_is_refused_at_template_save():
    template = EnvironmentVariableTemplate(name="t", environment_variables_text="DB=secret:env:")
    with pytest.raises(ValidationError) as caught:
        template.full_clean()
    [message] = caught.value.message_dict["environment_variables_text"]
    assert message.startswith("DB: secret:env:<NAME> needs a variable name")


def test_the_api_answers_400_naming_the_field_and_the_variable(client, settings, recording):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": ["t"]}
    ExecutorHost.objects.create(name="m", executor_type="mock", executor_config={})
    body = {"docker_image": "x", "environment_vars": {"API_KEY": "secret:arn:aws:nope"}}
    response = client.post(
        reverse("container_manager:api-jobs"), json.dumps(body),
        content_type="application/json", headers={"Authorization": "Bearer t"},
    )  # fmt: skip
    assert response.status_code == 400
    assert "environment_vars: API_KEY: not a secret reference" in response.content.decode()


@pytest.mark.parametrize(
    ("executor_type", "config", "refused"),
    [
        ("fargate", {"cluster": "c", "task_definition": "t", "subnets": ["s"]}, "env"),
        ("cloudrun", {"project": "p", "region": "r", "job": "j"}, "aws-ssm"),
    ],
)
def test_a_kind_the_host_cannot_use_is_refused_at_submit(executor_type, config, refused):
    host = ExecutorHost.objects.create(
        name="h", executor_type=executor_type, executor_config=config
    )
    value = {"env": "secret:env:CM_SECRET_A", "aws-ssm": f"secret:{SSM_ARN}"}[refused]
    with pytest.raises(ValidationError) as caught:
        ContainerJob.objects.create_job(image="x", docker_host=host, environment_vars={"A": value})
    [message] = caught.value.message_dict["override_environment"]
    assert f"cannot use A's secret reference of kind {refused}" in message


def test_a_template_reference_the_host_cannot_use_is_refused_unless_overridden(mock_host):
    host = ExecutorHost.objects.create(
        name="run", executor_type="cloudrun",
        executor_config={"project": "p", "region": "r", "job": "j", "image": "x"},
    )  # fmt: skip
    template = EnvironmentVariableTemplate.objects.create(
        name="t", environment_variables_text="TOKEN=secret:env:CM_SECRET_TOKEN"
    )
    with pytest.raises(ValidationError) as caught:
        ContainerJob.objects.create_job(image="x", docker_host=host, environment_template=template)
    assert "environment_template" in caught.value.message_dict
    ContainerJob.objects.create_job(
        image="x", docker_host=host, environment_template=template,
        environment_vars={"TOKEN": f"secret:{GCP}"},
    )  # fmt: skip


def test_gcp_references_are_refused_on_docker_unless_a_resolver_handles_them(settings):
    host = ExecutorHost.objects.create(name="d", executor_type="docker")
    env = {"K": f"secret:{GCP}"}
    with pytest.raises(ValidationError, match="only Cloud Run resolves it"):
        ContainerJob.objects.create_job(image="x", docker_host=host, environment_vars=env)
    settings.CONTAINER_MANAGER = {"SECRET_RESOLVER": "tests.test_secretrefs.vault_resolver"}
    ContainerJob.objects.create_job(image="x", docker_host=host, environment_vars=env)


def vault_resolver(ref):
    """A custom SECRET_RESOLVER (any kind): the value is the reference's secret id reversed."""
    return ref.secret_id[::-1]


def test_file_references_need_the_files_dir(settings, tmp_path):
    host = ExecutorHost.objects.create(name="d", executor_type="docker")
    env = {"K": "secret:file:token"}
    with pytest.raises(ValidationError, match="kind file"):
        ContainerJob.objects.create_job(image="x", docker_host=host, environment_vars=env)
    settings.CONTAINER_MANAGER = {"SECRET_FILES_DIR": str(tmp_path)}
    ContainerJob.objects.create_job(image="x", docker_host=host, environment_vars=env)


def test_masking_shows_a_reference_and_masks_a_value_that_only_looks_like_one():
    masked = mask_env({"API_TOKEN": f"secret:{SM_ARN}", "DB_PASSWORD": "secret:hunter2"})
    assert masked == {"API_TOKEN": f"secret:{SM_ARN}", "DB_PASSWORD": MASK}
    assert mask_env_text("API_TOKEN=secret:env:CM_SECRET_T") == "API_TOKEN=secret:env:CM_SECRET_T"


def test_the_builtin_resolver_reads_only_prefixed_worker_variables(monkeypatch):
    monkeypatch.setenv("CM_SECRET_TOKEN", VALUE)
    monkeypatch.setenv("DATABASE_URL", "postgres://app:pw@db/app")
    env = {"TOKEN": "secret:env:CM_SECRET_TOKEN", "MODE": "fast"}
    assert secretresolver.resolve_environment(env, "docker") == {"TOKEN": VALUE, "MODE": "fast"}
    with pytest.raises(Exception) as caught:
        secretresolver.resolve_environment({"DB": "secret:env:DATABASE_URL"}, "docker")
    message = str(caught.value)
    assert "DB: its secret reference of kind env was not resolved on docker" in message
    assert "does not start with SECRET_ENV_PREFIX 'CM_SECRET_'" in message
    assert "pw@db" not in message


def test_the_builtin_resolver_reads_plain_files_in_the_files_dir_only(settings, tmp_path):
    (tmp_path / "token").write_text(VALUE + "\n")
    outside = tmp_path.parent / "outside-secret"
    outside.write_text("outside")
    (tmp_path / "link").symlink_to(outside)
    resolve = secretresolver.resolve_environment
    with pytest.raises(Exception, match="SECRET_FILES_DIR is not set"):
        resolve({"T": "secret:file:token"}, "docker")
    settings.CONTAINER_MANAGER = {"SECRET_FILES_DIR": str(tmp_path)}
    assert resolve({"T": "secret:file:token"}, "docker") == {"T": VALUE}
    with pytest.raises(Exception, match="no file link in SECRET_FILES_DIR"):
        resolve({"T": "secret:file:link"}, "docker")
    with pytest.raises(Exception, match="no file missing in SECRET_FILES_DIR"):
        resolve({"T": "secret:file:missing"}, "docker")


def test_a_failing_resolver_is_named_by_kind_never_by_its_message(settings):
    settings.CONTAINER_MANAGER = {"SECRET_RESOLVER": "tests.test_secretrefs.leaky_resolver"}
    with pytest.raises(Exception) as caught:
        secretresolver.resolve_environment({"K": "secret:env:CM_SECRET_K"}, "mock")
    assert str(caught.value) == (
        "K: its secret reference of kind env was not resolved on mock: RuntimeError"
    )


def leaky_resolver(ref):
    """A resolver that fails with the value in its message."""
    raise RuntimeError(f"could not decode {VALUE}")


def test_the_mock_resolves_at_launch_and_fails_value_free(
    recording, make_mock_host, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    host = make_mock_host()
    monkeypatch.setenv("CM_SECRET_TOKEN", VALUE)
    ok = ContainerJob.objects.create_job(
        image="x", docker_host=host, environment_vars={"TOKEN": "secret:env:CM_SECRET_TOKEN"}
    )
    assert steps.launch(ok.pk) == "launched"
    missing = ContainerJob.objects.create_job(
        image="x", docker_host=host, environment_vars={"TOKEN": "secret:env:CM_SECRET_UNSET"}
    )
    assert steps.launch(missing.pk) == "failed"
    error = ContainerJob.objects.get(pk=missing.pk).last_error
    assert error == (
        "launch failed: TOKEN: its secret reference of kind env was not resolved on mock: "
        "worker variable CM_SECRET_UNSET is not set"
    )
    assert VALUE not in caplog.text
    stored = ContainerJob.objects.get(pk=ok.pk)
    assert stored.override_environment == "TOKEN=secret:env:CM_SECRET_TOKEN"


def test_a_resolver_that_cannot_be_imported_fails_manage_py_check(settings):
    settings.CONTAINER_MANAGER = {"SECRET_RESOLVER": "nowhere.resolve"}
    [message] = [m for m in checks.run_checks() if m.id == "container_manager.E003"]
    assert message.msg.startswith("CONTAINER_MANAGER['SECRET_RESOLVER'] = 'nowhere.resolve'")
