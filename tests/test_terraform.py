"""Terraform checks that need no Terraform: every .tf file parses, and the examples' outputs,
functions/settings.py and zappa_settings.json name the same things.

The environment variables are read from functions/settings.py itself (``ast``), not from a list
kept here; what this module keeps is the decision which of them a deployment gets from
Terraform (``COMMON``, ``BACKEND``) and which are optional tuning (``OPTIONAL``). A variable
added to the settings fails ``test_every_setting_variable_is_classified`` until it is placed.
"""

from __future__ import annotations

import ast
import importlib
import json
import math
import re
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

ROOT = Path(__file__).resolve().parent.parent
TERRAFORM = ROOT / "terraform"
SETTINGS = ROOT / "functions" / "settings.py"
ZAPPA = ROOT / "zappa_settings.json"
TF_FILES = sorted(TERRAFORM.rglob("*.tf"))

#: Every deployment must get these, whatever the cloud.
COMMON = {
    "DATABASE_URL",
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "CM_DISPATCH_BACKEND",
}
#: What each dispatch backend needs; OIDC names are both the push identity and the auth check.
BACKEND = {
    "cloudtasks": {
        "CM_CLOUDTASKS_PROJECT",
        "CM_CLOUDTASKS_LOCATION",
        "CM_CLOUDTASKS_QUEUE",
        "CM_STEP_BASE_URL",
        "CM_OIDC_SERVICE_ACCOUNT",
        "CM_OIDC_AUDIENCE",
    },
    "sqs": {"CM_SQS_QUEUE_URL", "AWS_REGION"},
}
#: Read by the settings but not a Terraform output: defaults fit, or an operator's own choice.
OPTIONAL = {
    "DATABASE_CONN_MAX_AGE": "tuning (600 by default: kept across steps, requests and events)",
    "DATABASE_CONN_HEALTH_CHECKS": "tuning (on by default: a kept connection is checked first)",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "only for admin forms posted from another origin",
    "DJANGO_FORCE_SCRIPT_NAME": "set per zappa stage in zappa_settings.json (API Gateway prefix)",
    "DJANGO_STATIC_URL": "only when static files are served from elsewhere",
    "CM_STATIC_STORAGE": "whitenoise (the default) needs nothing from the cloud",
    "CM_STATIC_BUCKET": "only with CM_STATIC_STORAGE=s3",
    "CM_DISPATCH_OPTIONS": "tuning of backend options (e.g. DISPATCH_DEADLINE)",
    "CM_LOCAL_WORKERS": "local backend only (not deployed)",
    "CM_SWEEP_INTERVAL": "local backend only (the cloud schedules the sweep)",
    "CM_SQS_ENDPOINT_URL": "tests (moto) and VPC endpoints",
    "CM_HMAC_SECRET": "pushers that cannot send Google OIDC tokens; not used by either example",
    "CM_API_TOKENS": "the JSON API's tokens are the operator's to issue",
    "CM_INSTANCE": "name of the deployment; the default fits one deployment per engine",
    "CM_LOG_LEVEL": "tuning (zappa_settings.json sets INFO)",
    "CM_PLATFORM_EVENTS": "set by both examples, which wire the events; unset: checks only",
    "CM_LOG_FORMAT": "tuning: json for CloudWatch / Cloud Logging filters",
    "CM_WEBHOOK_ALLOWED_NETWORKS": "the operator's choice: an on-premises webhook receiver",
    "AWS_LAMBDA_FUNCTION_NAME": "set by Lambda itself: tells the settings they run deployed",
    "K_SERVICE": "set by Cloud Run itself: tells the settings they run deployed",
    "DJANGO_SECURE_SSL_REDIRECT": "on by default when DEBUG is off",
    "DJANGO_SECURE_HSTS_SECONDS": "a year by default when DEBUG is off",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "the domain owner's choice (docs/configuration.md)",
    "CM_DB_POOLER": "set by the AWS example (RDS Proxy); PgBouncer's port 6432 says it alone",
}
#: Set by the platform itself, never by Terraform (Lambda refuses AWS_REGION as a variable).
PLATFORM = {"aws": {"AWS_REGION"}, "gcp": set()}
#: Where the deploy guides use the lower-case outputs (``terraform output <name>``).
DEPLOY_DOCS = {
    "gcp": [ROOT / "docs" / "deploy-gcp.md"],
    "aws": [ROOT / "docs" / "deploy-aws.md"],
}
#: Secret outputs, which must be ``sensitive = true``.
SECRET_OUTPUT = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL|DATABASE_URL", re.IGNORECASE)
EXECUTOR_MODULES = {
    "cloudrun_executor_config": "container_manager.executors.cloudrun.CloudRunExecutor",
    "fargate_executor_config": "container_manager.executors.fargate.FargateExecutor",
}


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_every_tf_file_parses(path: Path) -> None:
    with path.open() as handle:
        assert hcl2.load(handle), f"{path} is empty"


def test_terraform_tree_is_complete() -> None:
    for part in ("modules/gcp", "modules/aws", "examples/gcp", "examples/aws"):
        assert list((TERRAFORM / part).glob("*.tf")), f"terraform/{part} has no .tf file"


def test_settings_variables_are_found() -> None:
    found = settings_variables()
    # Read through os.environ.get, and through the env_bool / env_list helpers.
    assert {"DATABASE_URL", "DJANGO_DEBUG", "DJANGO_ALLOWED_HOSTS", "CM_SQS_QUEUE_URL"} <= found


def test_every_setting_variable_is_classified() -> None:
    classified = COMMON | set().union(*BACKEND.values()) | set(OPTIONAL)
    found = settings_variables()
    assert not found - classified, "classify in tests/test_terraform.py: required or OPTIONAL?"
    assert not classified - found, "no longer read by functions/settings.py: drop from the test"


@pytest.mark.parametrize("cloud", ["gcp", "aws"])
def test_output_names_are_setting_variables(cloud: str) -> None:
    stray = env_outputs(cloud) - settings_variables()
    assert not stray, f"terraform/examples/{cloud} outputs feed no setting: {sorted(stray)}"


def test_gcp_outputs_feed_every_required_setting() -> None:
    required = COMMON | BACKEND["cloudtasks"]
    missing = required - env_outputs("gcp") - PLATFORM["gcp"]
    assert not missing, f"no terraform/examples/gcp output for {sorted(missing)}"
    assert outputs("gcp")["CM_DISPATCH_BACKEND"]["value"] == '"cloudtasks"'


def test_aws_outputs_and_zappa_feed_every_required_setting() -> None:
    stage = zappa()["aws"]
    static = set(stage.get("environment_variables", {}))
    assert stage["environment_variables"]["CM_DISPATCH_BACKEND"] == "sqs"
    required = COMMON | BACKEND["sqs"]
    missing = required - env_outputs("aws") - static - PLATFORM["aws"]
    assert not missing, f"neither terraform/examples/aws nor zappa_settings.json sets {missing}"
    both = env_outputs("aws") & static
    assert not both, f"set by both Terraform and zappa_settings.json: {sorted(both)}"


@pytest.mark.parametrize("cloud", ["gcp", "aws"])
def test_secret_outputs_are_sensitive(cloud: str) -> None:
    for name, block in outputs(cloud).items():
        if SECRET_OUTPUT.search(name) and "executor_config" not in name:
            assert block.get("sensitive") is True, f"output {name} must be sensitive = true"
    assert {"DATABASE_URL", "DJANGO_SECRET_KEY"} <= env_outputs(cloud)


@pytest.mark.parametrize("cloud", ["gcp", "aws"])
def test_other_outputs_have_a_consumer(cloud: str) -> None:
    """Lower-case outputs: an executor_config, a zappa_* value, or used in the deploy guide."""
    docs = "\n".join(path.read_text() for path in DEPLOY_DOCS[cloud] if path.exists())
    for name in set(outputs(cloud)) - env_outputs(cloud):
        if name in EXECUTOR_MODULES or name.startswith("zappa_"):
            continue
        assert re.search(rf"terraform output[^\n`]*\b{name}\b", docs), (
            f"output {name} of terraform/examples/{cloud} is used nowhere: "
            f"show its use in {DEPLOY_DOCS[cloud][0].name}"
        )


@pytest.mark.parametrize("name", sorted(EXECUTOR_MODULES))
def test_executor_config_outputs_match_the_executor(name: str) -> None:
    cloud = "gcp" if name.startswith("cloudrun") else "aws"
    config = outputs(cloud)[name]["value"]
    module, _, class_name = EXECUTOR_MODULES[name].rpartition(".")
    schema = getattr(importlib.import_module(module), class_name).config_schema
    assert set(config) <= {key.name for key in schema}, f"{name}: keys the executor refuses"
    required = {key.name for key in schema if key.required}
    assert required <= set(config), f"{name}: missing {sorted(required - set(config))}"


def test_zappa_event_functions_exist() -> None:
    for stage_name, stage in zappa().items():
        for event in stage.get("events", []):
            module, _, attribute = event["function"].rpartition(".")
            target = getattr(importlib.import_module(module), attribute, None)
            assert callable(target), f"{stage_name}: {event['function']} is not a function"


def test_zappa_sqs_event_source_is_the_terraform_queue() -> None:
    stage = zappa()["aws"]
    (source,) = [e["event_source"] for e in stage["events"] if "event_source" in e]
    _arn, _aws, service, region, _account, queue = source["arn"].split(":")
    variables = example_variables("aws")
    assert service == "sqs"
    assert region == stage["aws_region"] == variables["region"], "regions differ"
    assert queue == f"{variables['name']}-steps", "the queue is <name>-steps in modules/aws"
    placeholder = stage["aws_environment_variables"]["CM_SQS_QUEUE_URL"]
    assert placeholder.endswith(f"/{queue}") and f".{region}." in placeholder
    assert "zappa_sqs_event_source_arn" in outputs("aws")


def test_zappa_function_and_role_names_match_terraform() -> None:
    settings = zappa()
    variables = example_variables("aws")
    assert variables["zappa_project_name"] == settings["aws"]["project_name"]
    assert variables["zappa_stage"] in settings
    assert "zappa_role_name" in outputs("aws")
    # zappa must use the role Terraform made, which carries the app's policy.
    assert settings["aws"]["manage_roles"] is False
    assert settings["aws"]["role_name"] == f"{variables['name']}-lambda"


def test_sweep_runs_as_often_on_both_clouds() -> None:
    (sweep,) = [e for e in zappa()["aws"]["events"] if e["function"].endswith(".sweep")]
    schedule = module_variables("gcp")["sweep_schedule"]
    assert _rate_seconds(sweep["expression"]) == _cron_seconds(schedule) == 60


def test_queue_visibility_covers_the_function_timeout() -> None:
    # AWS: a Lambda event source's queue needs six times the function's timeout.
    visibility = module_variables("aws")["queue_visibility_timeout_seconds"]
    assert visibility >= 6 * zappa()["aws"]["timeout_seconds"]


def test_zappa_stage_variables_are_terraform_outputs() -> None:
    """Values left to fill in zappa_settings.json come from the example of their backend's cloud."""
    for stage_name, stage in zappa().items():
        backend = _stage_value(stage_name, "CM_DISPATCH_BACKEND")
        cloud = {"sqs": "aws", "cloudtasks": "gcp"}[backend]
        stray = set(stage.get("aws_environment_variables", {})) - env_outputs(cloud)
        assert not stray, f"{stage_name}: no terraform/examples/{cloud} output for {stray}"


@pytest.mark.parametrize("budget", [4, 40, 100])
def test_aws_concurrency_derives_from_the_connection_budget(budget: int) -> None:
    """Reserved concurrency = the budget; the SQS event source 2 fewer, never below Lambda's 2."""
    module = TERRAFORM / "modules" / "aws"
    mapping = resource(module, "aws_lambda_event_source_mapping", "steps")
    (scaling,) = mapping["scaling_config"]
    assert mapping["event_source_arn"] == "${aws_sqs_queue.steps.arn}"
    assert mapping["function_name"] == "${var.lambda_function_name}"
    assert mapping["function_response_types"] == ['"ReportBatchItemFailures"']
    maximum = evaluate(module, scaling["maximum_concurrency"], db_connection_budget=budget)
    reserved = evaluate(module, "${local.lambda_reserved_concurrency}", db_connection_budget=budget)
    assert (reserved, maximum) == (budget, max(2, budget - 2))
    example = outputs("aws")["zappa_lambda_concurrency"]["value"]
    assert example == "${module.container_manager.lambda_reserved_concurrency}"


def test_zappa_reserved_concurrency_is_the_default_budget() -> None:
    budget = example_variables("aws")["db_connection_budget"]
    assert module_variables("aws")["db_connection_budget"] == budget
    assert zappa()["aws"]["lambda_concurrency"] == budget


@pytest.mark.parametrize(("budget", "concurrency"), [(3, 8), (40, 8), (100, 8), (40, 1)])
def test_gcp_concurrency_derives_from_the_connection_budget(budget: int, concurrency: int) -> None:
    """Instances x requests per instance within the budget; the queue 2 request slots fewer."""
    module = TERRAFORM / "modules" / "gcp"
    queue = resource(module, "google_cloud_tasks_queue", "steps")
    (limits,) = queue["rate_limits"]
    env = {"db_connection_budget": budget, "app_request_concurrency": concurrency}
    instances = evaluate(module, "${local.app_max_instance_count}", **env)
    dispatches = evaluate(module, limits["max_concurrent_dispatches"], **env)
    assert instances == max(1, budget // concurrency)
    assert instances * concurrency <= max(budget, concurrency)
    assert dispatches == max(1, instances * concurrency - 2)
    assert module_variables("gcp")["app_request_concurrency"] == _gunicorn_threads()
    assert {"app_max_instances", "app_concurrency"} <= set(outputs("gcp"))


def test_the_aws_database_is_reached_through_rds_proxy() -> None:
    module = TERRAFORM / "modules" / "aws"
    proxy = resource(module, "aws_db_proxy", "this")
    assert proxy["engine_family"] == '"POSTGRESQL"' and proxy["require_tls"] is True
    (auth,) = proxy["auth"]
    assert auth["secret_arn"] == "${aws_secretsmanager_secret.database[0].arn}"
    target = resource(module, "aws_db_proxy_target", "this")
    assert target["db_instance_identifier"] == "${aws_db_instance.this[0].identifier}"
    url = _block(module, "output", "database_url")["value"]
    assert "aws_db_proxy.this[0].endpoint" in url and "aws_db_instance.this[0].endpoint" not in url
    # The proxy hands transactions to any server connection: the app keeps no session state.
    assert outputs("aws")["CM_DB_POOLER"]["value"] == "${module.container_manager.db_pooler}"
    pooler = _block(module, "output", "db_pooler")["value"]
    assert pooler == '${var.create_database ? "transaction" : "none"}'


# -- helpers ------------------------------------------------------------------------------


@cache
def settings_variables() -> frozenset[str]:
    """Names of the environment variables functions/settings.py reads."""
    tree = ast.parse(SETTINGS.read_text())
    helpers = {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.args.args and _reads_env(node)
    }
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and _is_env_call(node.func, helpers):
            names.add(node.args[0])
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            names.add(node.slice)
    return frozenset(
        n.value for n in names if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )


@cache
def outputs(cloud: str) -> dict[str, dict[str, Any]]:
    """The output blocks of terraform/examples/<cloud>, by name."""
    return {
        _unquote(name): block
        for path in (TERRAFORM / "examples" / cloud).glob("*.tf")
        for entry in _load(path).get("output", [])
        for name, block in entry.items()
    }


def env_outputs(cloud: str) -> set[str]:
    """Outputs named like environment variables (upper case)."""
    return {name for name in outputs(cloud) if name.isupper()}


def example_variables(cloud: str) -> dict[str, Any]:
    return _variable_defaults(TERRAFORM / "examples" / cloud)


def module_variables(cloud: str) -> dict[str, Any]:
    return _variable_defaults(TERRAFORM / "modules" / cloud)


@cache
def zappa() -> dict[str, Any]:
    return json.loads(ZAPPA.read_text())


def _variable_defaults(directory: Path) -> dict[str, Any]:
    return {
        _unquote(name): _unquote(block.get("default"))
        for path in directory.glob("*.tf")
        for entry in _load(path).get("variable", [])
        for name, block in entry.items()
    }


def _stage_value(stage_name: str, key: str) -> Any:
    """An environment variable of a zappa stage, following ``extends``."""
    stage = zappa()[stage_name]
    value = stage.get("environment_variables", {}).get(key)
    if value is None and "extends" in stage:
        return _stage_value(stage["extends"], key)
    return value


@cache
def _load(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return hcl2.load(handle)


def _unquote(value: Any) -> Any:
    """python-hcl2 keeps the quotes of string literals and block labels."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _is_env_call(func: ast.AST, helpers: set[str]) -> bool:
    if isinstance(func, ast.Name):
        return func.id in helpers
    if isinstance(func, ast.Attribute):
        return (func.attr == "get" and _is_environ(func.value)) or func.attr == "getenv"
    return False


def _reads_env(function: ast.FunctionDef) -> bool:
    """Does the function pass its first parameter to os.environ.get?"""
    first = function.args.args[0].arg
    return any(
        isinstance(node, ast.Call)
        and _is_env_call(node.func, set())
        and node.args
        and isinstance(node.args[0], ast.Name)
        and node.args[0].id == first
        for node in ast.walk(function)
    )


def _rate_seconds(expression: str) -> int:
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours)\)", expression)
    assert match, f"unsupported schedule {expression!r}"
    return int(match[1]) * (60 if match[2].startswith("minute") else 3600)


def _cron_seconds(schedule: str) -> int:
    minute, *rest = schedule.split()
    assert rest == ["*"] * 4, f"unsupported cron schedule {schedule!r}"
    step = re.fullmatch(r"\*(?:/(\d+))?", minute)
    assert step, f"unsupported cron schedule {schedule!r}"
    return int(step[1] or 1) * 60


def resource(module: Path, kind: str, name: str) -> dict[str, Any]:
    """The body of ``resource "kind" "name"`` in a module."""
    return _block(module, "resource", kind, name)


def _block(module: Path, block_type: str, *labels: str) -> dict[str, Any]:
    for path in module.glob("*.tf"):
        for entry in _load(path).get(block_type, []):
            body: Any = entry
            for label in labels:
                body = next((v for k, v in body.items() if _unquote(k) == label), None)
                if body is None:
                    break
            if body is not None:
                return body
    raise AssertionError(f"no {block_type} {' '.join(labels)} in {module}")


def evaluate(module: Path, expression: Any, **variables: Any) -> Any:
    """A numeric Terraform expression of a module, with its locals and variable defaults
    (``variables`` override them); understands arithmetic, ``max``, ``min`` and ``floor``."""
    if not isinstance(expression, str):
        return expression
    defaults = {**_variable_defaults(module), **variables}
    local_values = {
        name: value
        for path in module.glob("*.tf")
        for entry in _load(path).get("locals", [])
        for name, value in entry.items()
    }

    def term(match: re.Match) -> str:
        kind, name = match[1], match[2]
        if kind == "var":
            return repr(defaults[name])
        return repr(evaluate(module, local_values[name], **variables))

    text = expression.removeprefix("${").removesuffix("}")
    text = re.sub(r"\b(var|local)\.(\w+)", term, text)
    assert re.fullmatch(r"[\d\s+\-*/().,]*|.*\b(max|min|floor)\(.*", text), text
    functions = {"max": max, "min": min, "floor": math.floor}
    return eval(text, {"__builtins__": {}}, functions)  # noqa: S307 - checked: numbers and calls


def _gunicorn_threads() -> int:
    dockerfile = (ROOT / "infra" / "gcp" / "Dockerfile").read_text()
    match = re.search(r"--threads (\d+)", dockerfile)
    assert match, "infra/gcp/Dockerfile: gunicorn --threads not found"
    return int(match[1])
