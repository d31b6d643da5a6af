"""A fake Cloud Run v2 (REST) and Cloud Logging ``entries:list``, in memory, for the tests.

Implements the paths and JSON bodies google-cloud-run sends with ``transport="rest"``:
jobs ``:run``, executions get / list / ``:cancel``, tasks list, and logging ``entries:list``.
An execution runs for ``ticks`` status reads, then ends as its command says (``script``).
"""

import re
import uuid
from datetime import UTC, datetime

import pytest

from tests.fakes import script
from tests.fakes.http import FakeServer

PROJECT, REGION, JOB = "cm-test", "europe-west1", "cm-job"
JOB_NAME = f"projects/{PROJECT}/locations/{REGION}/jobs/{JOB}"
_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 503: "UNAVAILABLE"}


def _now():
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _error(status, message):
    return status, {"error": {"code": status, "message": message, "status": _STATUS.get(status)}}


class FakeCloudRun(FakeServer):
    """Executions live in ``executions`` (by full name); ``requests`` records what was sent.

    ``image`` is the job's; with ``image_missing`` set, executions end failed without
    running, on a ``CONTAINER_MISSING`` condition, as for an image path that names no image.
    ``jobs`` are the names of the project's Cloud Run jobs (``JOB`` and any a test adds).
    """

    def __init__(self, ticks=1):
        super().__init__()
        self.ticks = ticks
        self.executions = {}
        self.jobs = {JOB}
        self.image = "busybox"
        self.image_missing = False

    def config(self, **extra):
        return {
            "project": PROJECT, "region": REGION, "job": JOB,
            "api_endpoint": self.url, "logging_endpoint": self.url,
            "anonymous_credentials": True, "log_wait_seconds": 0, "image": self.image, **extra,
        }  # fmt: skip

    def bad_config(self):
        config = self.config()
        del config["project"]
        return config, "project"

    def execution_count(self, prefix):
        return sum(1 for e in self.executions.values() if e["key"].startswith(prefix))

    def forget(self, name):
        with self.lock:
            self.executions.pop(name, None)

    # --- routing -------------------------------------------------------------------

    def route(self, method, path, query, body):
        if path == "/v2/entries:list":
            return self._entries(body)
        match = re.fullmatch(r"/v2/(projects/[^/]+/locations/[^/]+/jobs/[^/:]+)(.*)", path)
        if not match:
            return _error(404, f"no route {path}")
        job, rest = match.groups()
        if job.rsplit("/", 1)[-1] not in self.jobs:
            return _error(404, f"Resource '{job}' was not found")
        if method == "POST" and rest == ":run":
            return self._run(body, job)
        if method == "GET" and rest == "/executions":
            executions = [
                self._view(e, tick=False)
                for name, e in self.executions.items()
                if name.startswith(job + "/")
            ]
            return 200, {"executions": list(reversed(executions))}
        execution = self.executions.get(job + rest.split(":")[0].split("/tasks")[0])
        if execution is None:
            return _error(404, f"Execution {rest} not found")
        if method == "GET" and rest.endswith("/tasks"):
            return 200, {"tasks": self._tasks(execution)}
        if method == "POST" and rest.endswith(":cancel"):
            if execution["finished"]:
                return _error(400, "execution already finished")  # FAILED_PRECONDITION
            execution["cancelled"] = execution["finished"] = _now()
            return 200, self._operation(execution)
        if method == "GET":
            return 200, self._view(execution)
        return _error(404, f"no route {method} {path}")

    def _run(self, body, job=JOB_NAME):
        failure = self.take_failure()
        if failure:
            return _error(failure, "simulated failure")
        [override] = body.get("overrides", {}).get("containerOverrides", [{}])
        env = {e["name"]: e.get("value", "") for e in override.get("env", [])}
        short = f"{job.rsplit('/', 1)[-1]}-{uuid.uuid4().hex[:5]}"
        execution = {
            "name": f"{job}/executions/{short}", "short": short, "reads": 0,
            "image_missing": self.image_missing,
            "key": env.get("CM_LAUNCH_KEY", ""), "override": override,
            "overrides": body.get("overrides", {}), "created": _now(), "finished": None,
            "cancelled": None, "outcome": script.outcome(override.get("args")),
        }  # fmt: skip
        self.executions[execution["name"]] = execution
        return 200, self._operation(execution)

    def _operation(self, execution):
        metadata = {"@type": "type.googleapis.com/google.cloud.run.v2.Execution"}
        metadata.update(self._view(execution, tick=False))
        name = f"projects/{PROJECT}/locations/{REGION}/operations/{uuid.uuid4()}"
        return {"name": name, "metadata": metadata, "done": False}

    def _view(self, execution, tick=True):
        if tick:
            execution["reads"] += 1
            ended = execution["reads"] > self.ticks and not execution["outcome"].forever
            if ended and not execution["finished"]:
                execution["finished"] = _now()
        outcome, finished = execution["outcome"], execution["finished"]
        view = {
            "name": execution["name"], "job": JOB, "createTime": execution["created"],
            "startTime": execution["created"], "taskCount": 1,
            "template": {"containers": [{
                "name": execution["override"].get("name", "job"), "image": self.image,
                "args": execution["override"].get("args", []),
                "env": execution["override"].get("env", []),
            }]},
        }  # fmt: skip
        if not finished:
            view["runningCount"] = 1
            return view
        view["completionTime"] = finished
        if execution["cancelled"]:
            view["cancelledCount"] = 1
        elif execution["image_missing"]:
            view["failedCount"] = 1
            view["conditions"] = [{"type": "Completed", "state": "CONDITION_FAILED",
                                   "reason": "CONTAINER_MISSING",
                                   "message": f"Image '{self.image}' not found."}]  # fmt: skip
        elif outcome.exit_code == 0:
            view["succeededCount"] = 1
        else:
            view["failedCount"] = 1
            view["conditions"] = [{"type": "Completed", "state": "CONDITION_FAILED",
                                   "message": "Task cm-job-0 failed with exit code 3"}]  # fmt: skip
        return view

    def _tasks(self, execution):
        task = {"name": f"{execution['name']}/tasks/{execution['short']}-task0", "index": 0}
        if execution["finished"] and not execution["cancelled"] and not execution["image_missing"]:
            task["lastAttemptResult"] = {"exitCode": execution["outcome"].exit_code}
        return [task]

    def _entries(self, body):
        match = re.search(r'execution_name"="([^"]+)"', body.get("filter", ""))
        execution = next(
            (e for e in self.executions.values() if match and e["short"] == match.group(1)), None
        )
        if execution is None:
            return 200, {}
        entries = []
        for stream, lines in (("stdout", execution["outcome"].stdout),
                              ("stderr", execution["outcome"].stderr)):  # fmt: skip
            for line in lines:
                entries.append({
                    "logName": f"projects/{PROJECT}/logs/run.googleapis.com%2F{stream}",
                    "resource": {"type": "cloud_run_job", "labels": {"job_name": JOB}},
                    "labels": {"run.googleapis.com/execution_name": execution["short"]},
                    "textPayload": line, "timestamp": execution["created"],
                })  # fmt: skip
        return 200, {"entries": entries}


@pytest.fixture
def cloudrun_fake():
    """A fake Cloud Run + Cloud Logging server on 127.0.0.1, stopped after the test."""
    fake = FakeCloudRun().start()
    yield fake
    fake.stop()
