"""The zappa bundle: built offline by infra/lambda-bundle.sh, then run from its unzipped files.

A fresh interpreter that sees only the bundle loads zappa's packaged handler and answers an API
Gateway request for the admin login page, a scheduled sweep and SQS messages until a job ends.
Slow (about a minute; several the first time, to build the bundle's virtualenv).
"""

import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests import aws_support as aws
from tests.conftest import missing_service

REPO = Path(__file__).resolve().parents[1]
STAGE = "aws"
STAGE_REGION = "eu-west-1"
RUNTIME = json.loads((REPO / "zappa_settings.json").read_text())[STAGE]["runtime"]

pytestmark = pytest.mark.timeout(1200)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The unzipped bundle of the ``aws`` stage, built now."""
    found = subprocess.run(
        ["bash", "-c", f". infra/lib.sh && find_cpython {RUNTIME.removeprefix('python')}"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    if found.returncode != 0:
        missing_service(f"a Python for the Lambda runtime {RUNTIME} is needed to build the bundle")
    out = tmp_path_factory.mktemp("bundle")
    zip_path = out / "lambda.zip"
    built = subprocess.run(
        ["bash", str(REPO / "infra" / "lambda-bundle.sh"), STAGE, str(zip_path)],
        cwd=REPO, capture_output=True, text=True, timeout=1100,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-4000:]
    assert built.stdout.strip().splitlines()[-1] == str(zip_path)
    unzipped = out / "unzipped"
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(unzipped)
    return unzipped


@pytest.fixture
def moto_queue(monkeypatch):
    """A queue on a moto server in the stage's region: ``(endpoint, queue_url)``."""
    server, endpoint = aws.start_moto_server()
    aws.fake_aws_env(monkeypatch)
    import boto3

    client = boto3.client("sqs", region_name=STAGE_REGION, endpoint_url=endpoint)
    url = client.create_queue(QueueName="container-manager-steps")["QueueUrl"]
    yield endpoint, url
    server.stop()


def test_bundle_holds_the_project_and_none_of_the_rest(bundle):
    assert (bundle / "handler.py").is_file() and (bundle / "zappa_settings.py").is_file()
    assert (bundle / "functions" / "handlers.py").is_file()
    assert (bundle / "container_manager" / "engine" / "steps" / "__init__.py").is_file()
    assert (bundle / "staticfiles" / "staticfiles.json").is_file()  # collectstatic's manifest
    for left_out in ("tests", "docs", "terraform", "benchmarks", "infra", ".venv", "build"):
        assert not (bundle / left_out).exists(), left_out
    assert not list(bundle.glob("*.sqlite3*"))


def test_bundle_is_built_for_the_stages_runtime(bundle):
    tag = "cpython-" + RUNTIME.removeprefix("python").replace(".", "")
    assert RUNTIME == "python3.13"  # the newest runtime both zappa 0.63 and this machine have
    assert list((bundle / "container_manager" / "engine" / "__pycache__").glob(f"runner.{tag}.pyc"))
    assert list(bundle.glob("psycopg_binary*/_psycopg.*.so"))[0].name.startswith(f"_psycopg.{tag}-")


def test_packaged_handler_answers_http_schedule_and_sqs(bundle, moto_queue, tmp_path):
    endpoint, queue_url = moto_queue
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LAMBDA_TASK_ROOT": str(bundle),
        "AWS_LAMBDA_FUNCTION_NAME": f"container-manager-{STAGE}",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{RUNTIME}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": STAGE_REGION,
        "AWS_DEFAULT_REGION": STAGE_REGION,
        "DJANGO_SECRET_KEY": "bundle-test",
        "DJANGO_ALLOWED_HOSTS": "abc123.execute-api.eu-west-1.amazonaws.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'lambda.sqlite3'}",
        "CM_SQS_QUEUE_URL": queue_url,
        "CM_SQS_ENDPOINT_URL": endpoint,
    }
    probe = subprocess.run(
        [_base_python(), "-S", str(REPO / "tests" / "zappa_probe.py"), str(bundle)],
        cwd=bundle, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr[-4000:]
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert result["login"] == {"status": 200, "form": True}
    assert result["stylesheet_status"] == 200  # whitenoise serves the collected, hashed file
    assert set(result["sweep"]) == {
        "launch",
        "settle",
        "relaunch",
        "check",
        "cancel",
        "notify",
        "scheduled",
    }
    assert result["sweep"]["launch"] == 1
    assert result["batches"] and all(b == {"batchItemFailures": []} for b in result["batches"])
    assert result["job"] == "completed"
    # An ECS task state change on the step queue is consumed, and kept on its job's row.
    assert result["task_event"] == {"batchItemFailures": []}
    assert result["task_event_version"] == 7


def _base_python() -> str:
    """The runtime's interpreter (the bundle venv's); with ``-S`` it imports only the bundle."""
    return str(REPO / "build" / f"lambda-venv-{STAGE}" / "bin" / "python")
