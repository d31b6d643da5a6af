"""Resume of a workflow: re-run only what ended badly and what it skipped, keep what completed.

Run on SQLite and on PostgreSQL (``DATABASE_URL``); the recording backend plays the transport.
"""

import threading
import uuid

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from container_manager import dispatch
from container_manager.engine import retry, steps
from container_manager.engine.retry import retry_job, retry_workflow
from container_manager.executors.mock import MockExecutor
from container_manager.models import ArrayCounts, ContainerJob, Workflow, WorkflowResume
from container_manager.models.limits import QuotaExceeded
from tests.support import race, row
from tests.test_api import conforms
from tests.test_api_schedules import assert_hidden_like_unknown, call
from tests.test_api_workflows import JOBS, SERVICE
from tests.test_owners_schedules import token, user_with
from tests.test_retry import set_exit_code
from tests.test_workflows import deliver_all

pytestmark = pytest.mark.django_db(transaction=True)

#: A resume's statements: the transaction, the lock, the nodes, the skipped nodes' edges, two
#: UPDATEs, the new jobs, their edges (a SELECT, an INSERT, an UPDATE), the resume row, the
#: clear of a cancel request, the workflow read again.
STATEMENTS = 14


def node(host, *after, **fields):
    return {"docker_image": "x", "command": "true", "host": host.name, "depends_on": list(after)}


def nodes(workflow):
    return {job.workflow_node: job for job in Workflow.objects.get(pk=workflow.pk).jobs.all()}


def statuses(workflow):
    return {name: job.status for name, job in nodes(workflow).items()}


@pytest.fixture
def diamond(recording, mock_host, make_mock_host):
    """a -> (b, c) -> d; b fails on ``flaky`` (which then succeeds), so d is skipped."""
    flaky = make_mock_host(name="flaky", exit_code=3)
    spec = {
        "name": "diamond",
        "nodes": {
            "a": node(mock_host),
            "b": node(flaky, "a"),
            "c": node(mock_host, "a"),
            "d": node(mock_host, "b", "c"),
        },
    }
    workflow = Workflow.objects.submit(spec)
    deliver_all(recording)
    assert statuses(workflow) == {
        "a": "completed", "b": "failed", "c": "completed", "d": "skipped",
    }  # fmt: skip
    assert workflow.status == "failed"
    set_exit_code(flaky, 0)
    return workflow


def test_a_resume_reruns_the_failed_node_and_what_it_skipped_and_keeps_the_rest(recording, diamond):
    before = nodes(diamond)
    user = User.objects.create_user("ops")
    resume = retry_workflow(diamond, user)
    assert (resume.node_names, resume.count, resume.user) == (["b", "d"], 2, user)
    after = nodes(diamond)
    assert {name: after[name].pk == before[name].pk for name in "abcd"} == {
        "a": True, "b": False, "c": True, "d": False,
    }  # fmt: skip
    assert resume.nodes == [
        {"node": name, "job": str(before[name].pk), "retry": str(after[name].pk)} for name in "bd"
    ]
    for name in "bd":
        old, new = row(before[name]), after[name]
        assert (old.workflow_id, old.workflow_node) == (None, name)  # the old attempt, kept
        assert old.executor_metadata["retried_as"] == str(new.pk)
        assert new.executor_metadata == {"retry_of": str(old.pk)}
        assert (new.status, new.created_by_id) == ("pending", old.created_by_id)
    assert set(after["d"].depends_on.all()) == {after["b"], before["c"]}
    assert diamond.status == "running"

    deliver_all(recording)
    assert statuses(diamond) == dict.fromkeys("abcd", "completed")
    assert diamond.status == "completed"
    assert [MockExecutor.launch_count(before[name].pk) for name in "ac"] == [1, 1]
    assert [MockExecutor.launch_count(after[name].pk) for name in "bd"] == [1, 1]
    assert WorkflowResume.objects.get().workflow == diamond


def test_a_live_workflow_or_one_with_nothing_to_rerun_is_refused_and_nothing_is_written(
    recording, mock_host
):
    spec = {"nodes": {"a": node(mock_host), "b": node(mock_host, "a")}}
    workflow = Workflow.objects.submit(spec)
    with pytest.raises(ValidationError) as live:
        retry_workflow(workflow)
    assert live.value.message_dict["status"] == [
        f"status: workflow {workflow.pk} has nodes not ended (a, b); resume it once they have "
        "ended, or cancel it first"
    ]
    deliver_all(recording)
    assert workflow.status == "completed"
    with pytest.raises(ValidationError) as nothing:
        retry_workflow(workflow)
    assert (
        "has no node that failed, timed out or was cancelled: nothing to re-run"
        in (nothing.value.messages[0])
    )
    assert WorkflowResume.objects.count() == 0 and ContainerJob.objects.count() == 2


def test_a_second_resume_is_refused_while_the_first_runs(recording, diamond):
    retry_workflow(diamond)
    with pytest.raises(ValidationError) as again:
        retry_workflow(diamond)
    assert "has nodes not ended (b, d)" in again.value.messages[0]
    assert WorkflowResume.objects.count() == 1


def test_a_handler_that_ran_and_a_branch_not_taken_are_kept(recording, mock_host, make_mock_host):
    flaky = make_mock_host(name="flaky", exit_code=3)
    handler = {**node(mock_host), "depends_on": [{"node": "work", "on": "failure"}]}
    spec = {
        "nodes": {
            "work": node(flaky),
            "after": node(mock_host, "work"),
            "handler": handler,
            "unused": {**node(mock_host), "depends_on": [{"node": "handler", "on": "failure"}]},
        }
    }
    workflow = Workflow.objects.submit(spec)
    deliver_all(recording)
    assert statuses(workflow) == {
        "work": "failed", "after": "skipped", "handler": "completed", "unused": "skipped",
    }  # fmt: skip
    set_exit_code(flaky, 0)
    before = nodes(workflow)
    assert retry_workflow(workflow).node_names == ["work", "after"]
    kept = {name: nodes(workflow)[name].pk for name in ("handler", "unused")}
    assert kept == {name: before[name].pk for name in ("handler", "unused")}
    deliver_all(recording)
    assert statuses(workflow) == {
        "work": "completed", "after": "completed", "handler": "completed", "unused": "skipped",
    }  # fmt: skip
    assert workflow.status == "completed"


def test_a_cancelled_workflow_resumes_its_cancelled_nodes(recording, mock_host):
    spec = {"nodes": {"a": node(mock_host), "b": node(mock_host, "a")}}
    workflow = Workflow.objects.submit(spec)
    workflow.cancel()
    deliver_all(recording)
    assert (workflow.status, workflow.cancel_requested_at is not None) == ("cancelled", True)
    assert retry_workflow(workflow).node_names == ["a", "b"]
    assert workflow.cancel_requested_at is None
    assert Workflow.objects.get(pk=workflow.pk).cancel_requested_at is None
    deliver_all(recording)
    assert workflow.status == "completed"


def test_an_array_node_reruns_only_the_children_that_did_not_complete(recording, make_mock_host):
    host = make_mock_host(name="shards")
    spec = {"nodes": {"shards": {**node(host), "array_size": 4}, "merge": node(host, "shards")}}
    workflow = Workflow.objects.submit(spec)
    parent = nodes(workflow)["shards"]
    steps.launch(parent.pk)
    for child in parent.array_children.order_by("array_index"):
        set_exit_code(host, 1 if child.array_index == 2 else 0)
        steps.launch(child.pk)
        steps.check(child.pk)
    deliver_all(recording)
    assert statuses(workflow) == {"shards": "failed", "merge": "skipped"}
    set_exit_code(host, 0)
    assert retry_workflow(workflow).node_names == ["shards", "merge"]
    again = nodes(workflow)["shards"]
    assert [child.array_index for child in again.array_children.all()] == [2]
    assert ArrayCounts.objects.get(parent=again).completed == 3
    deliver_all(recording)
    assert workflow.status == "completed"


def test_a_nodes_job_alone_is_refused_naming_its_workflow(recording, diamond):
    failed = nodes(diamond)["b"]
    with pytest.raises(ValidationError) as refused:
        retry_job(failed)
    assert list(refused.value.message_dict) == ["workflow"]
    assert f"is node 'b' of workflow {diamond.pk}; retry the workflow" in refused.value.messages[0]
    assert ContainerJob.objects.filter(executor_metadata__retry_of=str(failed.pk)).count() == 0


def test_a_users_resume_is_held_to_its_quotas(recording, diamond, settings):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "QUOTA_ROWS_PER_REQUEST": 1}
    with pytest.raises(QuotaExceeded):
        retry_workflow(diamond, User.objects.create_user("ops"), limited=True)
    assert WorkflowResume.objects.count() == 0 and nodes(diamond)["b"].status == "failed"


# -- PostgreSQL: concurrent resumes, and a resume racing a late finish ---------------


@pytest.mark.postgres
def test_concurrent_resumes_on_postgres_make_one(postgres_only, recording, diamond):
    made, refused = [], []

    def resume():
        try:
            made.append(retry_workflow(Workflow.objects.get(pk=diamond.pk)).pk)
        except ValidationError as exc:
            refused.append(exc.messages[0])

    race(resume, 2)
    assert len(made) == 1 and WorkflowResume.objects.count() == 1
    assert refused == [
        f"status: workflow {diamond.pk} has nodes not ended (b, d); resume it once they have "
        "ended, or cancel it first"
    ]
    assert ContainerJob.objects.count() == 6  # four nodes, and one new job each for b and d


@pytest.mark.postgres
def test_a_node_finishing_between_the_resumes_read_and_write_is_not_rerun(
    postgres_only, recording, mock_host, make_mock_host, monkeypatch
):
    flaky = make_mock_host(name="flaky", exit_code=3)
    spec = {"nodes": {"b": node(flaky), "c": node(mock_host), "d": node(mock_host, "b")}}
    workflow = Workflow.objects.submit(spec)
    recording.take()
    jobs = nodes(workflow)
    for name in "bc":
        steps.launch(jobs[name].pk)
    steps.check(jobs["b"].pk)
    steps.launch(jobs["d"].pk)
    recording.take()
    assert statuses(workflow) == {"b": "failed", "c": "running", "d": "skipped"}
    set_exit_code(flaky, 0)

    read, finished, outcome = threading.Event(), threading.Event(), []
    decide = retry._nodes_to_rerun

    def after_the_read(*args):
        read.set()
        assert finished.wait(30)
        return decide(*args)

    monkeypatch.setattr(retry, "_nodes_to_rerun", after_the_read)

    def resume():
        try:
            outcome.append(retry_workflow(workflow))
        except ValidationError as exc:
            outcome.append(exc.messages[0])

    resuming = threading.Thread(target=lambda: race(resume, 1))
    resuming.start()
    assert read.wait(30)
    steps.check(jobs["c"].pk)  # c finishes, and commits, while the resume holds its reading
    finished.set()
    resuming.join(30)
    assert outcome == [
        f"status: workflow {workflow.pk} has nodes not ended (c); resume it once they have "
        "ended, or cancel it first"
    ]
    assert statuses(workflow) == {"b": "failed", "c": "completed", "d": "skipped"}
    assert WorkflowResume.objects.count() == 0

    monkeypatch.setattr(retry, "_nodes_to_rerun", decide)
    assert retry_workflow(workflow).node_names == ["b", "d"]
    assert nodes(workflow)["c"].pk == jobs["c"].pk
    deliver_all(recording)
    assert workflow.status == "completed" and MockExecutor.launch_count(jobs["c"].pk) == 1


# -- API and admin -------------------------------------------------------------------


@pytest.fixture
def api(settings, recording):
    """Tokens of alice and bob (every job permission) and viewer; the settings' transport."""
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "API_TOKENS": [SERVICE]}
    users = {name: user_with(name, *JOBS) for name in ("alice", "bob")}
    users["viewer"] = user_with("viewer", "view_containerjob")
    secrets = {name: token(user) for name, user in users.items()}
    return {**secrets, "users": users, "transport": dispatch.get_backend()}


def owned_diamond(transport, mock_host, flaky, user):
    spec = {
        "nodes": {
            "a": node(mock_host),
            "b": node(flaky, "a"),
            "c": node(mock_host, "a"),
            "d": node(mock_host, "b", "c"),
        }
    }
    workflow = Workflow.objects.submit(spec, user)
    deliver_all(transport)
    set_exit_code(flaky, 0)
    return workflow


def retry_url(pk):
    return reverse("container_manager:api-workflow-retry", args=[pk])


def test_api_retry_answers_201_with_the_workflow_and_its_resumes(
    client, api, recording, mock_host, make_mock_host
):
    document = client.get(reverse("container_manager:api-openapi")).json()
    flaky = make_mock_host(name="flaky", exit_code=3)
    workflow = owned_diamond(api["transport"], mock_host, flaky, api["users"]["alice"])
    answer = call(client, "post", retry_url(workflow.pk), api["alice"])
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert conforms(document, "Workflow", body)
    assert body["status"] == "running" and body["links"]["retry"].endswith(retry_url(workflow.pk))
    [resume] = body["resumes"]
    assert (resume["by"], resume["count"]) == ("alice", 2)
    assert [entry["node"] for entry in resume["nodes"]] == ["b", "d"]
    jobs = {entry["name"]: entry["job"] for entry in body["nodes"]}
    assert [jobs[entry["node"]] for entry in resume["nodes"]] == [
        entry["retry"] for entry in resume["nodes"]
    ]
    again = call(client, "post", retry_url(workflow.pk), api["alice"])
    assert again.status_code == 409 and conforms(document, "Error", again.json())
    assert "has nodes not ended (b, d)" in again.json()["error"]
    deliver_all(api["transport"])
    read = call(
        client, "get", reverse("container_manager:api-workflow", args=[workflow.pk]), api["alice"]
    ).json()
    assert read["status"] == "completed" and len(read["resumes"]) == 1
    done = call(client, "post", retry_url(workflow.pk), api["alice"])
    assert done.status_code == 409 and "nothing to re-run" in done.json()["error"]


def test_api_retry_permissions_and_visibility_are_those_of_a_jobs_retry(
    client, api, recording, mock_host, make_mock_host
):
    flaky = make_mock_host(name="flaky", exit_code=3)
    workflow = owned_diamond(api["transport"], mock_host, flaky, api["users"]["alice"])
    assert call(client, "post", retry_url(workflow.pk), api["viewer"]).status_code == 403
    requests = [("post", retry_url, None)]
    assert_hidden_like_unknown(client, api["bob"], requests, workflow.pk, uuid.uuid4())
    assert call(client, "post", retry_url("not-a-uuid"), api["bob"]).status_code == 404
    assert WorkflowResume.objects.count() == 0
    assert call(client, "post", retry_url(workflow.pk), SERVICE).status_code == 201


def test_the_admin_button_resumes_and_the_page_lists_the_resumes(admin_client, diamond):
    page = reverse("admin:container_manager_workflow_change", args=[diamond.pk])
    button = reverse("admin:container_manager_workflow_retry", args=[diamond.pk])
    assert button.encode() in admin_client.get(page).content
    assert admin_client.get(button).status_code == 403  # POST only
    response = admin_client.post(button, follow=True)
    assert response.redirect_chain[-1][0] == page
    content = response.content.decode()
    assert "Resumed: 2 node(s) re-run (b, d)." in content
    old_b = WorkflowResume.objects.get().nodes[0]["job"]
    assert reverse("admin:container_manager_containerjob_change", args=[old_b]) in content
    assert button not in content  # no node ended badly now: no button
    refused = admin_client.post(button, follow=True).content.decode()
    assert "has nodes not ended (b, d)" in refused and WorkflowResume.objects.count() == 1


def test_the_admin_offers_no_resume_while_a_node_is_live(admin_client, diamond):
    page = reverse("admin:container_manager_workflow_change", args=[diamond.pk])
    button = reverse("admin:container_manager_workflow_retry", args=[diamond.pk])
    assert diamond.jobs.filter(workflow_node="c").update(status="running") == 1
    assert button.encode() not in admin_client.get(page).content  # b failed, but c is live
    assert diamond.jobs.filter(workflow_node="c").update(status="completed") == 1
    assert button.encode() in admin_client.get(page).content


def test_the_admin_button_needs_the_permission_to_retry_jobs(client, diamond):
    client.force_login(user_with("viewer", "view_workflow", "view_containerjob", is_staff=True))
    page = reverse("admin:container_manager_workflow_change", args=[diamond.pk])
    button = reverse("admin:container_manager_workflow_retry", args=[diamond.pk])
    assert button.encode() not in client.get(page).content
    assert client.post(button).status_code == 403
    assert WorkflowResume.objects.count() == 0


def fan(host, flaky, width):
    """``work`` fails on ``flaky``; ``width`` nodes wait for it."""
    after = {f"n{i}": node(host, "work") for i in range(width)}
    return {"nodes": {"work": node(flaky), **after}}


def test_the_statements_of_a_resume_do_not_grow_with_the_nodes_rerun(
    recording, mock_host, make_mock_host
):
    flaky = make_mock_host(name="flaky", exit_code=3)
    small, wide = (Workflow.objects.submit(fan(mock_host, flaky, n)) for n in (1, 8))
    deliver_all(recording)
    counts = []
    for workflow in (small, wide):
        with CaptureQueriesContext(connection) as statements:
            retry_workflow(workflow)
        counts.append(len(statements))
    assert counts[0] == counts[1], counts
    assert counts[0] <= STATEMENTS, [q["sql"][:60] for q in statements.captured_queries]


def test_a_nodes_job_page_offers_no_retry_and_points_to_the_workflow(admin_client, diamond):
    failed = nodes(diamond)["b"]
    page = reverse("admin:container_manager_containerjob_change", args=[failed.pk])
    content = admin_client.get(page).content.decode()
    assert reverse("admin:container_manager_containerjob_retry", args=[failed.pk]) not in content
    assert "This job is node &#x27;b&#x27; of a workflow: resume the workflow" in content
