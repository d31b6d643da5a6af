"""Edge conditions: an edge fires on success, failure or always; a node that can no longer run
ends skipped, down the chain; every release and skip is a step safe twice, found by the sweep.

Run on SQLite and on PostgreSQL (``DATABASE_URL``); the recording backend plays the transport.
"""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from container_manager.engine import steps
from container_manager.engine.retry import retry_job, retry_workflow
from container_manager.engine.transitions import release_dependents
from container_manager.models import ContainerJob, JobDependency, Workflow
from tests.support import SWEEP_STATEMENTS, row, submit, sweep_until_done
from tests.test_api import conforms
from tests.test_api_schedules import call
from tests.test_api_workflows import WORKFLOWS, api, document, one, transport  # noqa: F401
from tests.test_workflows import deliver_all, launches

pytestmark = pytest.mark.django_db(transaction=True)


def node(host, *depends_on, **fields):
    """A node on ``host``; each of ``depends_on`` a name, or ``(name, condition)``."""
    edges = [d if isinstance(d, str) else {"node": d[0], "on": d[1]} for d in depends_on]
    image = {"docker_image": "x", "command": "true", "host": host.name}
    return {**image, "depends_on": edges, **fields}


def handlers(work_host, host):
    """work; notify on its failure; cleanup always; report after notify; audit after report."""
    return {
        "name": "handlers",
        "nodes": {
            "work": node(work_host),
            "notify": node(host, ("work", "failure")),
            "cleanup": node(host, ("work", "always")),
            "report": node(host, "notify"),
            "audit": node(host, ("report", "always")),
        },
    }


#: How the nodes of ``handlers`` end when the work fails, and when it succeeds.
WHEN_WORK_FAILS = dict.fromkeys(("notify", "cleanup", "report", "audit"), "completed")
WHEN_WORK_FAILS["work"] = "failed"
WHEN_WORK_SUCCEEDS = WHEN_WORK_FAILS | {
    "work": "completed",
    "notify": "skipped",
    "report": "skipped",
}


def statuses(workflow):
    return {job.workflow_node: job.status for job in workflow.jobs.all()}


def nodes(workflow):
    return {job.workflow_node: job for job in workflow.jobs.all()}


def test_the_failure_handler_and_the_cleanup_run_when_the_work_fails(
    recording, mock_host, make_mock_host
):
    workflow = Workflow.objects.submit(handlers(make_mock_host(exit_code=3), mock_host))
    deliver_all(recording)
    assert statuses(workflow) == WHEN_WORK_FAILS
    jobs = nodes(workflow)
    assert jobs["notify"].started_at >= jobs["work"].completed_at
    assert workflow.status == "failed"  # the handler ran, but a node failed


def test_the_failure_handler_is_skipped_down_the_chain_when_the_work_succeeds(recording, mock_host):
    workflow = Workflow.objects.submit(handlers(mock_host, mock_host))
    deliver_all(recording)
    assert statuses(workflow) == WHEN_WORK_SUCCEEDS
    jobs = nodes(workflow)
    work, notify = jobs["work"], jobs["notify"]
    fires = "the edge fires on failure"
    assert notify.last_error == f"dependency {work.pk} (work) ended completed; {fires}"
    assert jobs["report"].last_error == f"dependency {notify.pk} (notify) ended skipped"
    assert launches(notify) == launches(jobs["report"]) == 0
    assert notify.completed_at is not None and notify.started_at is None
    assert workflow.status == "completed"  # skipped nodes are not failures


def test_a_failed_dependency_skips_a_workflow_array_node_and_cancels_its_children(
    recording, mock_host, make_mock_host
):
    spec = {
        "nodes": {
            "work": node(make_mock_host(exit_code=1)),
            "shards": node(mock_host, "work", array_size=3),
            "after": node(mock_host, ("shards", "always")),
        }
    }
    workflow = Workflow.objects.submit(spec)
    deliver_all(recording)
    assert statuses(workflow) == {"work": "failed", "shards": "skipped", "after": "completed"}
    children = ContainerJob.objects.filter(array_parent=nodes(workflow)["shards"])
    assert set(children.values_list("status", flat=True)) == {"cancelled"}


def test_create_job_takes_job_and_condition_pairs_outside_a_workflow(
    recording, mock_host, make_mock_host
):
    bad = submit(make_mock_host(exit_code=2), name="bad")
    on_failure = submit(mock_host, depends_on=[(bad, "failure")])
    always = submit(mock_host, depends_on=[(bad.pk, "always")])
    on_success = submit(mock_host, depends_on=[bad])
    assert set(JobDependency.objects.values_list("job_id", "condition")) == {
        (on_failure.pk, "failure"), (always.pk, "always"), (on_success.pk, "success"),
    }  # fmt: skip
    deliver_all(recording)
    assert [row(j).status for j in (on_failure, always, on_success)] == [
        "completed", "completed", "cancelled",
    ]  # fmt: skip
    # Outside a workflow a job that cannot run is cancelled, as before edge conditions.
    good = submit(mock_host)
    handler = submit(mock_host, depends_on=[(good, "failure")])
    deliver_all(recording)
    assert row(handler).status == "cancelled"
    assert row(handler).last_error.endswith("ended completed; the edge fires on failure")


@pytest.mark.parametrize("item", [("x", "never"), ("x",), ("x", "always", 1)])
def test_a_bad_pair_is_refused_naming_depends_on(recording, mock_host, item):
    dependency = submit(mock_host)
    before = ContainerJob.objects.count()
    with pytest.raises(ValidationError) as raised:
        submit(mock_host, depends_on=[(dependency, *item[1:])])
    assert raised.value.message_dict["depends_on"][0].startswith("depends_on: a pair must be")
    assert ContainerJob.objects.count() == before


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ({"node": "a", "on": "never"}, "'on' must be one of success, failure, always"),
        ({"node": "a", "when": "always"}, "only the keys node and on"),
        ({"on": "always"}, "an object with a node name"),
        ({"node": "nowhere", "on": "always"}, "no node 'nowhere'"),
        (3, "must be a node name"),
    ],
)
def test_a_bad_edge_in_a_spec_names_the_node_and_stores_nothing(mock_host, item, words):
    spec = {"nodes": {"a": node(mock_host), "b": node(mock_host) | {"depends_on": [item]}}}
    before = (Workflow.objects.count(), ContainerJob.objects.count())
    with pytest.raises(ValidationError) as raised:
        Workflow.objects.submit(spec)
    [message] = raised.value.message_dict["nodes.b.depends_on"]
    assert message.startswith("nodes.b.depends_on: ") and words in message, message
    assert (Workflow.objects.count(), ContainerJob.objects.count()) == before


def test_lost_releases_and_skips_are_finished_by_the_sweep(recording, mock_host, make_mock_host):
    failed = Workflow.objects.submit(handlers(make_mock_host(exit_code=3), mock_host))
    passed = Workflow.objects.submit(handlers(mock_host, mock_host))
    sweep_until_done(recording)
    assert statuses(failed) == WHEN_WORK_FAILS
    assert statuses(passed) == WHEN_WORK_SUCCEEDS
    assert all(launches(job) <= 1 for job in ContainerJob.objects.all())


def test_the_sweep_settles_the_children_of_a_skipped_array(recording, mock_host, make_mock_host):
    bad = make_mock_host(exit_code=1)
    spec = {"nodes": {"work": node(bad), "shards": node(mock_host, "work", array_size=3)}}
    workflow = Workflow.objects.submit(spec)
    deliver_all(recording)  # work fails, shards is skipped: its children's launches are lost
    shards = nodes(workflow)["shards"]
    ContainerJob.objects.filter(array_parent=shards).update(status="pending", completed_at=None)
    sent = steps.sweep(now=timezone.now() + timedelta(seconds=60))
    assert sent["settle"] == 3  # the third query: children of a skipped array
    deliver_all(recording)
    children = ContainerJob.objects.filter(array_parent=shards)
    assert set(children.values_list("status", flat=True)) == {"cancelled"}


def test_a_skip_and_a_release_run_twice_change_nothing(recording, mock_host):
    workflow = Workflow.objects.submit(handlers(mock_host, mock_host))
    jobs = nodes(workflow)
    work = jobs["work"]
    steps.launch(work.pk)
    recording.take()  # the submit's launches
    steps.check(work.pk)  # completed: releases cleanup, dooms notify
    sent = {job_id for step, job_id, _ in recording.take() if step == "launch"}
    assert sent == {str(jobs["notify"].pk), str(jobs["cleanup"].pk)}
    assert steps.launch(jobs["notify"].pk) == "skipped"
    before = ContainerJob.objects.get(pk=jobs["notify"].pk)
    assert steps.launch(jobs["notify"].pk) == "nothing-to-do"
    again = ContainerJob.objects.get(pk=jobs["notify"].pk)
    assert (again.status, again.updated_at, again.last_error) == (
        before.status, before.updated_at, before.last_error,
    )  # fmt: skip
    recording.take()
    # The release again (a duplicate after-commit, or the sweep): the same launches, no move.
    assert release_dependents(work.pk, "completed") == 1  # cleanup; notify is no longer pending
    assert steps.launch(jobs["cleanup"].pk) == "launched"
    assert steps.launch(jobs["cleanup"].pk) != "launched"
    assert launches(jobs["cleanup"]) == 1


def count(call, *args):
    with CaptureQueriesContext(connection) as captured:
        call(*args)
    return len(captured)


def test_conditions_cost_no_statement_more(recording, mock_host, make_mock_host):
    """A release is one SELECT, a skip the launch step's cancel, the sweep its fixed count."""

    def finished(condition):
        dependency = submit(mock_host)
        waiting = submit(mock_host, depends_on=[(dependency, condition)])
        steps.launch(dependency.pk)
        recording.take()
        return dependency, waiting, count(steps.check, dependency.pk)  # the final move

    plain_dep, _, plain_check = finished("success")
    handler_dep, handler, handler_check = finished("failure")
    assert handler_check == plain_check
    assert count(release_dependents, plain_dep.pk, "completed") == 1
    assert count(release_dependents, handler_dep.pk, "completed") == 1
    skipped = count(steps.launch, handler.pk)
    assert row(handler).status == "cancelled"  # outside a workflow
    doomed = submit(mock_host, depends_on=[submit(make_mock_host(exit_code=1))])
    failing = doomed.depends_on.get()
    steps.launch(failing.pk)
    steps.check(failing.pk)
    assert count(steps.launch, doomed.pk) == skipped  # as the old cancel by a failed dependency
    recording.take()
    later = timezone.now() + timedelta(seconds=60)
    submit(mock_host, depends_on=[(submit(mock_host), "always")])
    assert count(steps.sweep, later) == SWEEP_STATEMENTS


# -- the JSON API ----------------------------------------------------------------


def test_the_api_takes_edges(client, api, document, mock_host, transport):  # noqa: F811
    """In a workflow document ({node, on}) and in a job submit ({job, on}); bad ones are 400s."""
    body = handlers(mock_host, mock_host)
    answer = call(client, "post", WORKFLOWS, api["alice"], body)
    assert answer.status_code == 201, answer.content
    assert conforms(document, "Workflow", answer.json())
    shown = {n["name"]: n["depends_on"] for n in answer.json()["nodes"]}
    assert shown["notify"] == [{"node": "work", "on": "failure"}] and shown["report"] == ["notify"]
    deliver_all(transport)
    read = call(client, "get", one(answer.json()["id"]), api["alice"]).json()
    assert conforms(document, "Workflow", read) and read["status"] == "completed"
    assert {n["name"]: n["status"] for n in read["nodes"]} == WHEN_WORK_SUCCEEDS
    work = next(n["job"] for n in read["nodes"] if n["name"] == "work")
    jobs = reverse("container_manager:api-jobs")
    image = {"docker_image": "x", "command": "true", "host": mock_host.name}
    submitted = call(
        client, "post", jobs, api["alice"], {**image, "depends_on": [{"job": work, "on": "always"}]}
    )
    assert submitted.status_code == 201, submitted.content
    edge = JobDependency.objects.get(job_id=submitted.json()["id"])
    assert (str(edge.depends_on_id), edge.condition) == (work, "always")
    bad = call(client, "post", jobs, api["alice"], {**image, "depends_on": [{"job": work}]})
    assert bad.status_code == 400 and conforms(document, "Error", bad.json())
    assert bad.json()["fields"]["depends_on"][0].startswith("depends_on: item 1: must be a job id")
    body["nodes"]["notify"]["depends_on"] = [{"node": "work", "on": "sometimes"}]
    refused = call(client, "post", WORKFLOWS, api["alice"], body)
    assert refused.status_code == 400
    assert list(refused.json()["fields"]) == ["nodes.notify.depends_on"]


def test_a_retry_keeps_the_conditions_of_its_edges(recording, mock_host):
    done = submit(mock_host)
    handler = submit(mock_host, depends_on=[(done, "failure")])
    deliver_all(recording)
    assert row(handler).status == "cancelled"
    again = retry_job(row(handler), None)
    assert list(JobDependency.objects.filter(job=again).values_list("depends_on", "condition")) == [
        (done.pk, "failure")
    ]
    deliver_all(recording)
    assert row(again).status == "cancelled"  # the same edge still cannot fire


def test_a_retry_of_a_failed_node_brings_back_the_nodes_it_skipped(
    recording, mock_host, make_mock_host
):
    workflow = Workflow.objects.submit(handlers(make_mock_host(exit_code=3), mock_host))
    spec = {"nodes": {"work": node(make_mock_host(exit_code=3)), "after": node(mock_host, "work")}}
    chain = Workflow.objects.submit(spec)
    deliver_all(recording)
    assert statuses(chain) == {"work": "failed", "after": "skipped"}
    # A node is re-run by its workflow's retry (issue 29, item 5), no longer by retry_job.
    assert retry_workflow(chain).node_names == ["work", "after"]
    again, after = nodes(chain)["work"], nodes(chain)["after"]
    assert after.status == "pending" and list(after.depends_on.all()) == [again]
    # The handlers that ran (completed) stay as they are.
    assert retry_workflow(workflow).node_names == ["work"]


def test_a_cancelled_workflow_ends_its_nodes_cancelled_not_skipped(recording, mock_host):
    spec = {"nodes": {"a": node(mock_host), "b": node(mock_host, "a"), "c": node(mock_host, "b")}}
    workflow = Workflow.objects.submit(spec)
    recording.take()
    workflow.cancel()
    messages = recording.take()  # the cancels; the launches first, as releases may come
    assert [steps.launch(nodes(workflow)[name].pk) for name in "abc"] == ["cancelled"] * 3
    for step, job_id, _ in messages:
        steps.run_step(step, job_id)
    deliver_all(recording)
    assert statuses(workflow) == dict.fromkeys("abc", "cancelled")
    assert workflow.status == "cancelled"
