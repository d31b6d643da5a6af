"""A fake Scaleway Serverless Jobs API (v1alpha2), in memory, for the tests.

Implements the paths and JSON bodies the scaleway SDK sends: start a job definition,
get / list / stop job runs. A run is queued, then running, then ends as its command says.
"""

import re
import uuid
from datetime import UTC, datetime

import pytest

from tests.fakes import script
from tests.fakes.http import FakeServer

REGION = "fr-par"
DEFINITION = "11111111-2222-3333-4444-555555555555"
PROJECT = "66666666-7777-8888-9999-000000000000"
ACCESS_KEY, SECRET_KEY = "SCWXXXXXXXXXXXXXXXXX", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
BASE = f"/serverless-jobs/v1alpha2/regions/{REGION}"


def _now():
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FakeScaleway(FakeServer):
    """Runs live in ``runs`` (by id); ``requests`` records what was sent.

    ``image`` is the definition's ``image_uri``; with ``image_missing`` set, runs end
    ``failed`` without running, for the reason ``image_not_found``. ``definitions`` are the
    ids of the project's job definitions (``DEFINITION`` and any a test adds).
    """

    def __init__(self, ticks=1):
        super().__init__()
        self.ticks = ticks
        self.runs = {}
        self.definitions = {DEFINITION}
        self.image = "busybox"
        self.image_missing = False

    def config(self, **extra):
        return {
            "job_definition_id": DEFINITION, "region": REGION, "project_id": PROJECT,
            "access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "api_url": self.url,
            "image": self.image, **extra,
        }  # fmt: skip

    def bad_config(self):
        config = self.config()
        del config["job_definition_id"]
        return config, "job_definition_id"

    def execution_count(self, prefix):
        return sum(1 for r in self.runs.values() if r["key"].startswith(prefix))

    def forget(self, run_id):
        with self.lock:
            self.runs.pop(run_id, None)

    def route(self, method, path, query, body):
        started = re.fullmatch(rf"{BASE}/job-definitions/([^/]+)/start", path)
        if method == "POST" and started and started.group(1) in self.definitions:
            return self._start(body, started.group(1))
        if method == "GET" and path == f"{BASE}/job-definitions/{DEFINITION}":
            return 200, {"id": DEFINITION, "name": "cm-job", "project_id": PROJECT,
                         "cpu_limit": 1000, "memory_limit": 1024, "local_storage_capacity": 1000,
                         "image_uri": self.image, "environment_variables": {}, "description": "",
                         "startup_command": [], "args": [], "region": REGION}  # fmt: skip
        if path.startswith(f"{BASE}/job-definitions/"):
            return 404, {"message": "resource is not found", "type": "not_found"}
        if method == "GET" and path == f"{BASE}/job-runs":
            runs = [self._view(r, tick=False) for r in self.runs.values()
                    if r["definition"] == query.get("job_definition_id")]  # fmt: skip
            page, size = int(query.get("page", 1)), int(query.get("page_size", 20))
            paged = runs[(page - 1) * size : page * size]
            return 200, {"job_runs": paged, "total_count": len(runs)}
        match = re.fullmatch(rf"{BASE}/job-runs/([^/]+)(/stop)?", path)
        run = self.runs.get(match.group(1)) if match else None
        if run is None:
            return 404, {"message": "resource is not found", "type": "not_found"}
        if method == "POST" and match.group(2):
            if not run["ended"]:
                run["ended"], run["stopped"] = _now(), True
            return 200, self._view(run, tick=False)
        return 200, self._view(run)

    def _start(self, body, definition=DEFINITION):
        failure = self.take_failure()
        if failure:
            return failure, {"message": "simulated failure", "type": "simulated"}
        env = body.get("environment_variables") or {}
        run = {
            "id": str(uuid.uuid4()), "definition": definition, "key": env.get("CM_LAUNCH_KEY", ""),
            "body": body, "created": _now(), "reads": 0, "ended": None, "stopped": False,
            "outcome": script.outcome(body.get("args")), "image_missing": self.image_missing,
        }  # fmt: skip
        self.runs[run["id"]] = run
        return 200, {"job_runs": [self._view(run, tick=False)]}

    def _view(self, run, tick=True):
        if tick:
            run["reads"] += 1
            if run["reads"] > self.ticks and not run["outcome"].forever and not run["ended"]:
                run["ended"] = _now()
        view = {
            "id": run["id"], "job_definition_id": run["definition"], "region": REGION,
            "cpu_limit": 1000, "memory_limit": 1024, "local_storage_capacity": 1000,
            "environment_variables": run["body"].get("environment_variables") or {},
            "args": run["body"].get("args") or [], "startup_command": [],
            "created_at": run["created"], "started_at": run["created"],
            "state": "running" if run["reads"] else "queued",
        }  # fmt: skip
        if run["ended"]:
            view["terminated_at"] = run["ended"]
            code = run["outcome"].exit_code
            if run["stopped"]:
                view.update(state="interrupted", reason="cancellation")
            elif run["image_missing"]:
                view.update(state="failed", reason="image_not_found",
                            error_message=f"image {self.image} not found")  # fmt: skip
            elif code == 0:
                view.update(state="succeeded", exit_code=0)
            else:
                view.update(state="failed", reason="exited_with_error", exit_code=code)
        return view


@pytest.fixture
def scaleway_fake():
    """A fake Scaleway Serverless Jobs server on 127.0.0.1, stopped after the test."""
    fake = FakeScaleway().start()
    yield fake
    fake.stop()
