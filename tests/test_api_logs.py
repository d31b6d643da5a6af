"""The logs API follows a job's output: live while it runs, by byte offsets, bounded, then stored.

Mock executions print their lines on ``container_manager.clock``, which these tests move.
"""

import uuid

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from container_manager.engine import steps
from container_manager.executors.exceptions import ExecutorConnectionError
from container_manager.executors.mock import MockExecutor
from container_manager.models import ApiToken, ContainerJob
from tests.test_api import BEARER, TOKEN, conforms

pytestmark = pytest.mark.django_db

LINES = "".join(f"line {n}\n" for n in range(10))  # 70 bytes


@pytest.fixture
def api(settings, recording):
    """The recording backend, with the test token accepted."""
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [TOKEN]}
    return recording


@pytest.fixture
def document(client):
    return client.get(reverse("container_manager:api-openapi")).json()


def logs_url(job_id):
    return reverse("container_manager:api-job-logs", args=[job_id])


def read(client, job, headers=BEARER, **offsets):
    """One answer of the logs API, checked against the served schema."""
    response = client.get(logs_url(job.pk), offsets, headers=headers)
    assert response.status_code == 200, response.content
    return response.json()


def running(host, **fields):
    """A job on ``host``, launched: its mock execution runs from the clock's now."""
    job = ContainerJob.objects.create_job(image="busybox", docker_host=host, **fields)
    assert steps.launch(job.pk) == "launched"
    return ContainerJob.objects.get(pk=job.pk)


def test_a_running_job_answers_what_it_printed_so_far(client, api, document, clock, make_mock_host):
    host = make_mock_host(duration=60, line_interval=10, stdout=LINES, stderr="warn\n")
    job = running(host)
    clock.advance(15)
    body = read(client, job)
    assert conforms(document, "JobLogs", body)
    assert (body["status"], body["source"], body["complete"]) == ("running", "live", False)
    assert (body["stdout"], body["stderr"]) == ("line 0\nline 1\n", "warn\n")
    assert body["clean_output"] == "line 0\nline 1\n" and body["truncated"] is False
    assert (body["stdout_offset"], body["stderr_offset"]) == (14, 5)


def test_following_with_the_offsets_gets_every_line_once(
    client, api, document, clock, make_mock_host
):
    host = make_mock_host(duration=10, line_interval=1, stdout=LINES, stderr="start\nend\n")
    job = running(host)
    answers, offsets = [], {}
    while not (answers and answers[-1]["complete"]):
        assert len(answers) < 100, "the job never completed"
        body = read(client, job, **offsets)
        assert conforms(document, "JobLogs", body)
        answers.append(body)
        offsets = {name: body[name] for name in ("stdout_offset", "stderr_offset")}
        clock.advance(0.5)
        steps.check(job.pk)  # harvests once the run has ended
    done = ContainerJob.objects.get(pk=job.pk)
    assert done.status == "completed" and done.stdout_log == LINES
    assert "".join(a["stdout"] for a in answers) == done.stdout_log
    assert "".join(a["stderr"] for a in answers) == done.stderr_log == "start\nend\n"
    live = [a["stdout"] for a in answers if a["source"] == "live" and a["stdout"]]
    assert live[:2] == ["line 0\n", "line 1\n"] and len(live) >= 8  # line by line, as printed
    assert [a["source"] for a in answers][-1] == "stored"


def test_an_offset_read_while_running_still_counts_once_the_logs_are_stored(
    client, api, clock, make_mock_host
):
    host = make_mock_host(duration=10, line_interval=1, stdout=LINES)
    job = running(host)
    clock.advance(3.5)
    first = read(client, job)
    assert first["stdout"] == "line 0\nline 1\nline 2\nline 3\n"
    clock.advance(10)
    steps.check(job.pk)
    rest = read(client, job, stdout_offset=first["stdout_offset"])
    assert (rest["source"], rest["complete"]) == ("stored", True)
    assert rest["stdout"] == "".join(f"line {n}\n" for n in range(4, 10))
    assert read(client, job, stdout_offset=rest["stdout_offset"])["stdout"] == ""


def test_each_answer_is_bounded_and_says_when_bytes_were_dropped(
    client, api, settings, clock, make_mock_host
):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "LOG_MAX_BYTES": 32}
    job = running(make_mock_host(duration=60, stdout=LINES))
    body = read(client, job)
    # Only the last 32 bytes are kept (from a character boundary); the text says so.
    assert body["truncated"] is True and body["stdout"] == LINES[38:]
    assert body["stdout_offset"] == 70
    tail = read(client, job, stdout_offset=63)
    assert tail == {**body, "stdout": "line 9\n", "clean_output": "line 9\n", "truncated": False}


def test_stored_logs_longer_than_the_bound_come_in_whole_lines(client, api, settings, mock_host):
    job = ContainerJob.objects.create_job(image="x", docker_host=mock_host)
    ContainerJob.objects.filter(pk=job.pk).update(status="completed", stdout_log=LINES)
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "LOG_MAX_BYTES": 32}
    pieces, offset, complete = [], 0, False
    while not complete:
        body = read(client, job, stdout_offset=offset)
        assert len(body["stdout"].encode()) <= 32 and body["stdout"].endswith("\n")
        pieces.append(body["stdout"])
        offset, complete = body["stdout_offset"], body["complete"]
    assert pieces == ["line 0\nline 1\nline 2\nline 3\n", "line 4\nline 5\nline 6\nline 7\n",
                      "line 8\nline 9\n"]  # fmt: skip


@pytest.mark.parametrize("value", ["-1", "1.5", "ten", "9" * 30, "٣"])
def test_a_bad_offset_is_a_400_naming_it(client, api, document, mock_host, value):
    job = ContainerJob.objects.create_job(image="x", docker_host=mock_host)
    response = client.get(logs_url(job.pk), {"stderr_offset": value}, headers=BEARER)
    assert response.status_code == 400 and conforms(document, "Error", response.json())
    assert "stderr_offset" in response.json()["fields"]


def test_a_job_the_caller_cannot_see_answers_like_an_unknown_one(
    client, recording, clock, make_mock_host
):
    owner = User.objects.create_user("owner")
    other = User.objects.create_user("other")
    for user in (owner, other):
        user.user_permissions.add(Permission.objects.get(codename="view_containerjob"))
    job = running(make_mock_host(duration=60, stdout="secret line\n"), created_by=owner)
    mine = {"Authorization": f"Bearer {ApiToken.objects.issue(owner)[1]}"}
    theirs = {"Authorization": f"Bearer {ApiToken.objects.issue(other)[1]}"}
    assert read(client, job, headers=mine)["stdout"] == "secret line\n"
    hidden = client.get(logs_url(job.pk), {"stdout_offset": 0}, headers=theirs)
    unknown_id = uuid.UUID(int=job.pk.int ^ 1)
    unknown = client.get(logs_url(unknown_id), {"stdout_offset": 0}, headers=theirs)
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["error"].replace(str(job.pk), "?") == unknown.json()["error"].replace(
        str(unknown_id), "?"
    )


def test_a_platform_that_cannot_be_read_now_is_a_503(
    client, api, document, mock_host, monkeypatch, clock
):
    job = running(mock_host)

    def unreachable(self, execution_id):
        raise ExecutorConnectionError("host unreachable (simulated)")

    monkeypatch.setattr(MockExecutor, "get_logs", unreachable)
    response = client.get(logs_url(job.pk), headers=BEARER)
    assert response.status_code == 503 and conforms(document, "Error", response.json())
    assert "unreachable" not in response.json()["error"]  # platform details stay in the log


def test_a_platform_without_live_logs_says_so(client, api, clock, make_mock_host, monkeypatch):
    monkeypatch.setitem(MockExecutor.capabilities, "supports_live_logs", False)
    job = running(make_mock_host(duration=60))
    body = read(client, job)
    assert (body["source"], body["stdout"], body["complete"]) == ("none", "", False)


def test_a_job_not_launched_yet_has_no_output_yet(client, api, mock_host):
    job = ContainerJob.objects.create_job(image="x", docker_host=mock_host)
    body = read(client, job)
    assert (body["status"], body["source"], body["stdout"], body["stdout_offset"]) == (
        "pending", "none", "", 0,
    )  # fmt: skip
