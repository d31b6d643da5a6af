"""A client generated from the served OpenAPI document by openapi-python-client, used for real.

The generator lives in a venv of its own (``infra/openapi-client.sh``): its dependencies never
mix with this one's. The generated client runs here, against a live server (mock executor, local
workers): submit, wait for the end, read the logs; submit a long job and cancel it.
"""

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import missing_service, wait_for
from tests.test_api import TOKEN

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parent.parent
GENERATOR = Path(
    os.environ.get("CM_OPENAPI_CLIENT_VENV", REPO / ".venv-openapi-client")
) / "bin" / "openapi-python-client"  # fmt: skip
PACKAGE = "cm_generated_client"


@pytest.fixture
def generated(live_server, tmp_path, monkeypatch):
    """The client package generated from ``live_server``'s ``api/openapi.json``, imported."""
    if not GENERATOR.exists():
        missing_service(f"{GENERATOR} not found: run infra/openapi-client.sh")
    try:
        import attrs  # noqa: F401
        import dateutil  # noqa: F401
        import httpx  # noqa: F401
    except ImportError as exc:
        missing_service(f"the generated client's runtime is not installed (dev extra): {exc}")
    document = tmp_path / "openapi.json"
    with urllib.request.urlopen(f"{live_server.url}/cm/api/openapi.json") as answer:
        document.write_bytes(answer.read())
    # Its venv's bin on PATH: the generator formats its output with the ruff it installed.
    path = f"{GENERATOR.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    done = subprocess.run(
        [str(GENERATOR), "generate", "--path", str(document), "--meta", "none",
         "--output-path", str(tmp_path / PACKAGE)],
        capture_output=True, text=True, env={**os.environ, "PATH": path}, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout, done.stdout
    monkeypatch.syspath_prepend(str(tmp_path))
    yield __import__(PACKAGE)
    for name in [n for n in sys.modules if n.split(".")[0] == PACKAGE]:
        del sys.modules[name]


def test_submit_wait_logs_and_cancel_through_a_generated_client(
    generated, live_server, local, settings, make_mock_host
):
    from importlib import import_module

    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [TOKEN]}
    make_mock_host(name="quick", stdout="hello from the mock\n")
    make_mock_host(name="slow", duration=600)
    # Each operationId is a module of the client, named for what it does.
    ops = {
        name: import_module(f"{PACKAGE}.api.default.{name}")
        for name in ("submit_job", "get_job", "get_job_logs", "cancel_job", "list_jobs")
    }
    models = import_module(f"{PACKAGE}.models")
    client = generated.AuthenticatedClient(base_url=f"{live_server.url}/cm/api", token=TOKEN)

    labels = models.JobSubmitLabels.from_dict({"team": "data"})
    body = models.JobSubmit(docker_image="busybox", command="echo hi", host="quick", labels=labels)
    job = ops["submit_job"].sync(client=client, body=body)
    assert isinstance(job, models.Job) and job.docker_image == "busybox"
    assert job.labels.to_dict() == {"team": "data"}
    wait_for(lambda: ops["get_job"].sync(client=client, job_id=job.id).status == "completed")
    logs = ops["get_job_logs"].sync(client=client, job_id=job.id)
    assert logs.complete and logs.stdout.endswith("hello from the mock\n")

    long_one = models.JobSubmit(docker_image="x", host="slow")
    slow = ops["submit_job"].sync(client=client, body=long_one)
    wait_for(lambda: ops["get_job"].sync(client=client, job_id=slow.id).status == "running")
    cancelled = ops["cancel_job"].sync_detailed(client=client, job_id=slow.id)
    assert cancelled.status_code == 202
    wait_for(lambda: ops["get_job"].sync(client=client, job_id=slow.id).status == "cancelled")

    page = ops["list_jobs"].sync(client=client, limit=1, label=["team=data"])
    assert [j.id for j in page.jobs] == [job.id] and page.next_cursor is None
