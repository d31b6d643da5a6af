"""Array dependencies (AWS Batch's N_TO_N and SEQUENTIAL) on the mock executor, message by message.

Run on SQLite and on PostgreSQL (``DATABASE_URL``); the recording backend plays the transport.
"""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from container_manager.engine import steps
from container_manager.engine.retry import retry_job
from container_manager.engine.workflows import add_dependencies
from container_manager.models import ContainerJob, JobDependency, Workflow
from tests.support import row, submit, sweep_until_done
from tests.test_api import conforms
from tests.test_api_schedules import call
from tests.test_api_workflows import WORKFLOWS, api, document, transport  # noqa: F401
from tests.test_workflows import deliver_all

pytestmark = pytest.mark.django_db(transaction=True)


def n_to_n(job, on="success"):
    return {"job": job, "on": on, "type": "n_to_n"}


def children(parent):
    return list(ContainerJob.objects.filter(array_parent=parent.pk).order_by("array_index"))


def statuses(parent):
    return [child.status for child in children(parent)]


def fail_child(parent, index, failing_host):
    """Child ``index`` of ``parent`` runs on ``failing_host``, so it alone fails."""
    rows = ContainerJob.objects.filter(array_parent=parent.pk, array_index=index)
    assert rows.update(docker_host=failing_host) == 1


def child_edges(parent):
    """(child index, index of the child it waits for, that child's parent) of each child edge."""
    edges = JobDependency.objects.filter(job__array_parent=parent.pk)
    return sorted(
        edges.values_list("job__array_index", "depends_on__array_index", "depends_on__array_parent")
    )


def deliver_holding(backend, held):
    """Deliver every message but those for a job in ``held`` (returned, not delivered)."""
    kept = []
    while batch := backend.take():
        for step, job_id, _delay in batch:
            if job_id in held:
                kept.append((step, job_id, _delay))
            else:
                steps.run_step(step, job_id)
    return kept


# -- N_TO_N ------------------------------------------------------------------


def test_n_to_n_child_waits_only_for_its_own_index(recording, mock_host, make_mock_host):
    a = submit(mock_host, name="a", array_size=5)
    b = submit(mock_host, name="b", array_size=5, depends_on=[n_to_n(a)])
    fail_child(a, 2, make_mock_host(exit_code=3))
    assert child_edges(b) == [(i, i, a.pk) for i in range(5)]
    assert not JobDependency.objects.filter(job=b).exists()  # the parent waits for nothing
    deliver_all(recording)
    assert statuses(a) == ["completed", "completed", "failed", "completed", "completed"]
    assert statuses(b) == ["completed", "completed", "cancelled", "completed", "completed"]
    a_children, b_children = children(a), children(b)
    assert b_children[2].last_error == f"dependency {a_children[2].pk} (a[2]) ended failed"
    assert b_children[2].started_at is None
    for i in (0, 1, 3, 4):
        assert b_children[i].started_at >= a_children[i].completed_at
    assert (row(a).status, row(b).status) == ("failed", "cancelled")
    assert row(b).last_error == "array children: 4 completed, 0 failed, 0 timed out, 1 cancelled"


def test_n_to_n_child_runs_before_the_other_children_of_its_dependency(recording, mock_host):
    a = submit(mock_host, name="a", array_size=3)
    b = submit(mock_host, name="b", array_size=3, depends_on=[n_to_n(a)])
    held = {str(child.pk) for child in children(a)[1:]}
    kept = deliver_holding(recording, held)
    assert statuses(a) == ["completed", "pending", "pending"]
    assert statuses(b) == ["completed", "pending", "pending"]
    for step, job_id, delay in kept:
        recording.send(step, job_id, delay)
    deliver_all(recording)
    assert (row(a).status, row(b).status) == ("completed", "completed")


def test_a_plain_dependency_of_an_n_to_n_array_holds_every_child(recording, mock_host):
    gate = submit(mock_host, name="gate")
    a = submit(mock_host, name="a", array_size=2)
    b = submit(mock_host, name="b", array_size=2, depends_on=[gate, n_to_n(a)])
    assert list(JobDependency.objects.filter(job=b).values_list("depends_on", flat=True)) == [
        gate.pk
    ]
    held = {str(gate.pk)}
    kept = deliver_holding(recording, held)
    assert statuses(a) == ["completed", "completed"] and statuses(b) == ["pending", "pending"]
    for step, job_id, delay in kept:
        recording.send(step, job_id, delay)
    deliver_all(recording)
    assert row(b).status == "completed"
    assert min(k.started_at for k in children(b)) >= row(gate).completed_at


def test_n_to_n_with_a_condition_fires_per_child(recording, mock_host, make_mock_host):
    a = submit(mock_host, name="a", array_size=3)
    fail_child(a, 1, make_mock_host(exit_code=1))
    handler = submit(mock_host, name="h", array_size=3, depends_on=[n_to_n(a, on="failure")])
    deliver_all(recording)
    assert statuses(handler) == ["cancelled", "completed", "cancelled"]
    assert JobDependency.objects.filter(job__array_parent=handler, condition="failure").count() == 3


def test_n_to_n_in_a_workflow(recording, mock_host, make_mock_host):
    image = {"docker_image": "x", "command": "true", "host": mock_host.name}
    workflow = Workflow.objects.submit(
        {
            "nodes": {
                "a": {**image, "array_size": 5},
                "b": {**image, "array_size": 5, "depends_on": [{"node": "a", "type": "n_to_n"}]},
                "c": {**image, "depends_on": ["b"]},
            }
        }
    )
    a, b, c = (workflow.jobs.get(workflow_node=name) for name in "abc")
    assert child_edges(b) == [(i, i, a.pk) for i in range(5)]
    assert list(
        JobDependency.objects.filter(job__workflow=workflow).values_list("job", "depends_on")
    ) == [(c.pk, b.pk)]
    fail_child(a, 2, make_mock_host(exit_code=3))
    deliver_all(recording)
    assert statuses(b) == ["completed", "completed", "cancelled", "completed", "completed"]
    assert [row(job).status for job in (a, b, c)] == ["failed", "cancelled", "skipped"]
    assert workflow.status == "failed"


# -- SEQUENTIAL --------------------------------------------------------------


def test_sequential_children_run_one_after_another_in_index_order(recording, mock_host):
    parent = submit(mock_host, name="s", array_size=5, array_order="sequential")
    assert child_edges(parent) == [(i, i - 1, parent.pk) for i in range(1, 5)]
    assert [k.has_dependents for k in children(parent)] == [True] * 4 + [False]
    [(step, job_id, _)] = recording.take()
    assert steps.run_step(step, job_id) == "array-parent"
    # Only child 0 is sent: each other child is sent by its edge's release, not to wait.
    [(step, job_id, _)] = recording.take()
    kids = children(parent)
    assert job_id == str(kids[0].pk) and steps.run_step(step, job_id) == "launched"
    deliver_all(recording)
    kids = children(parent)
    assert [k.status for k in kids] == ["completed"] * 5
    assert sorted(kids, key=lambda k: k.started_at) == kids
    for before, after in zip(kids, kids[1:], strict=False):
        assert after.started_at >= before.completed_at
    assert row(parent).status == "completed"


def test_a_sequential_child_that_fails_cancels_the_rest(recording, mock_host, make_mock_host):
    parent = submit(mock_host, name="s", array_size=5, array_order="sequential")
    fail_child(parent, 2, make_mock_host(exit_code=1))
    deliver_all(recording)
    assert statuses(parent) == ["completed", "completed", "failed", "cancelled", "cancelled"]
    assert row(parent).status == "failed"


def test_the_sweep_runs_a_sequential_array_whose_messages_were_lost(recording, mock_host):
    parent = submit(mock_host, array_size=4, array_order="sequential")
    recording.take()
    sweep_until_done(recording)
    kids = children(parent)
    assert [k.status for k in kids] == ["completed"] * 4
    assert sorted(kids, key=lambda k: k.started_at) == kids


# -- statements ----------------------------------------------------------------


def statements(work):
    with CaptureQueriesContext(connection) as captured:
        work()
    return len(captured)


def test_array_edges_take_statements_constant_in_the_size(recording, mock_host):
    def plain(size):
        return statements(lambda: submit(mock_host, array_size=size))

    def per_child(size):
        a = submit(mock_host, array_size=size)
        return statements(lambda: submit(mock_host, array_size=size, depends_on=[n_to_n(a)]))

    def sequential(size):
        return statements(lambda: submit(mock_host, array_size=size, array_order="sequential"))

    base = plain(10)
    assert per_child(10) == per_child(1000) == base + 3  # the dependency's SELECT, INSERT, UPDATE
    assert sequential(10) == sequential(1000) == base + 1  # an INSERT … SELECT


def test_a_workflow_with_n_to_n_takes_statements_constant_in_the_size(recording, mock_host):
    def submit_workflow(size):
        image = {"docker_image": "x", "command": "true", "host": mock_host.name}
        spec = {
            "nodes": {
                "a": {**image, "array_size": size},
                "b": {**image, "array_size": size, "depends_on": [{"node": "a", "type": "n_to_n"}]},
            }
        }
        return statements(lambda: Workflow.objects.submit(spec))

    assert submit_workflow(10) == submit_workflow(1000)


# -- bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda a, plain: {"array_size": 5, "depends_on": [{"job": a, "type": "N_TO_N"}]},
         "depends_on: item 1: 'type' must be n_to_n."),
        (lambda a, plain: {"array_size": 5, "depends_on": [{"job": a, "kind": "n_to_n"}]},
         "depends_on: item 1: must be"),
        (lambda a, plain: {"depends_on": [n_to_n(a)]},
         "depends_on: an n_to_n edge needs array_size on this job."),
        (lambda a, plain: {"array_size": 5, "depends_on": [n_to_n(plain)]},
         "is not an array parent"),
        (lambda a, plain: {"array_size": 5, "depends_on": [n_to_n(children(a)[0])]},
         "is not an array parent"),
        (lambda a, plain: {"array_size": 4, "depends_on": [n_to_n(a)]},
         "same size: job {a} has 5 children, this job 4."),
        (lambda a, plain: {"array_size": 5, "array_order": "random"},
         "array_order: must be one of parallel, sequential."),
        (lambda a, plain: {"array_order": "sequential"}, "array_order: needs array_size"),
    ],
)  # fmt: skip
def test_bad_array_edges_are_refused_and_nothing_is_stored(recording, mock_host, make, message):
    a, plain = submit(mock_host, array_size=5), submit(mock_host)
    before = (ContainerJob.objects.count(), JobDependency.objects.count())
    with pytest.raises(ValidationError) as caught:
        submit(mock_host, **make(a, plain))
    [(field, [text])] = caught.value.message_dict.items()
    assert field == text.split(":")[0] and message.format(a=a.pk) in text
    assert (ContainerJob.objects.count(), JobDependency.objects.count()) == before


def test_an_n_to_n_edge_is_not_added_later(recording, mock_host):
    a, b = submit(mock_host, array_size=3), submit(mock_host, array_size=3)
    with pytest.raises(ValidationError, match="written with its array"):
        add_dependencies(b, [n_to_n(a)])


def test_a_cycle_through_n_to_n_edges_is_refused(recording, mock_host):
    a = submit(mock_host, array_size=3)
    b = submit(mock_host, array_size=3, depends_on=[n_to_n(a)])
    with pytest.raises(ValidationError, match="a cycle"):
        add_dependencies(a, [b])
    assert not JobDependency.objects.filter(job=a).exists()


@pytest.mark.parametrize(
    "b_fields, message",
    [
        ({"array_size": 4}, "nodes.b.depends_on: an n_to_n edge joins arrays of the same size"),
        ({}, "nodes.b.depends_on: an n_to_n edge needs array_size"),
        ({"array_size": 5, "array_order": "backwards"}, "nodes.b.array_order: must be one of"),
    ],
)
def test_bad_array_edges_in_a_workflow_are_refused(recording, mock_host, b_fields, message):
    image = {"docker_image": "x", "command": "true", "host": mock_host.name}
    spec = {
        "nodes": {
            "a": {**image, "array_size": 5},
            "b": {**image, **b_fields, "depends_on": [{"node": "a", "type": "n_to_n"}]},
        }
    }
    with pytest.raises(ValidationError) as caught:
        Workflow.objects.submit(spec)
    assert any(message in text for texts in caught.value.message_dict.values() for text in texts)
    assert not Workflow.objects.exists() and not ContainerJob.objects.exists()


def test_a_bad_type_in_a_workflow_names_the_node(recording, mock_host):
    image = {"docker_image": "x", "host": mock_host.name, "array_size": 2}
    spec = {"nodes": {"a": image, "b": {**image, "depends_on": [{"node": "a", "type": "all"}]}}}
    with pytest.raises(ValidationError) as caught:
        Workflow.objects.submit(spec)
    assert caught.value.message_dict == {
        "nodes.b.depends_on": ["nodes.b.depends_on: item 1: 'type' must be n_to_n."]
    }


# -- the JSON API ----------------------------------------------------------------


def test_the_api_takes_the_type_and_the_order(client, api, document, mock_host, transport):  # noqa: F811
    from django.urls import reverse

    jobs = reverse("container_manager:api-jobs")
    image = {"docker_image": "x", "command": "true", "host": mock_host.name}
    a = call(
        client, "post", jobs, api["alice"], {**image, "array_size": 3, "array_order": "sequential"}
    )
    assert a.status_code == 201, a.content
    assert conforms(document, "Job", a.json())
    b = call(
        client, "post", jobs, api["alice"],
        {**image, "array_size": 3, "depends_on": [{"job": a.json()["id"], "type": "n_to_n"}]},
    )  # fmt: skip
    assert b.status_code == 201, b.content
    assert child_edges(row_of(b)) == [(i, i, row_of(a).pk) for i in range(3)]
    assert child_edges(row_of(a)) == [(1, 0, row_of(a).pk), (2, 1, row_of(a).pk)]
    deliver_all(transport)
    assert (row_of(a).status, row_of(b).status) == ("completed", "completed")
    for body, field, text in [
        ({**image, "array_size": 2, "depends_on": [{"job": a.json()["id"], "type": "n_to_n"}]},
         "depends_on", "same size"),
        ({**image, "array_size": 3, "depends_on": [{"job": a.json()["id"], "type": "x"}]},
         "depends_on", "'type' must be n_to_n"),
        ({**image, "array_order": "sequential"}, "array_order", "needs array_size"),
    ]:  # fmt: skip
        bad = call(client, "post", jobs, api["alice"], body)
        assert bad.status_code == 400 and conforms(document, "Error", bad.json())
        assert text in bad.json()["fields"][field][0]
    workflow = {
        "nodes": {
            "a": {**image, "array_size": 3},
            "b": {**image, "array_size": 3, "depends_on": [{"node": "a", "type": "n_to_n"}]},
        }
    }
    answer = call(client, "post", WORKFLOWS, api["alice"], workflow)
    assert answer.status_code == 201, answer.content
    assert conforms(document, "Workflow", answer.json())
    shown = {n["name"]: n["depends_on"] for n in answer.json()["nodes"]}
    assert shown["b"] == [{"node": "a", "type": "n_to_n"}]


def row_of(answer):
    return ContainerJob.objects.get(pk=answer.json()["id"])


# -- retry ------------------------------------------------------------------------


def test_retrying_an_n_to_n_dependency_brings_back_only_the_missing_children(
    recording, mock_host, make_mock_host
):
    flaky = make_mock_host(exit_code=2)
    a = submit(mock_host, name="a", array_size=5)
    b = submit(mock_host, name="b", array_size=5, depends_on=[n_to_n(a)])
    fail_child(a, 2, flaky)
    deliver_all(recording)
    flaky.executor_config = {"exit_code": 0}
    flaky.save()
    a2 = retry_job(row(a))
    [b2] = a2.brought_back
    assert b2.executor_metadata == {"retry_of": str(b.pk)}
    assert [k.array_index for k in children(a2)] == [2]
    assert [k.array_index for k in children(b2)] == [2]
    assert child_edges(b2) == [(2, 2, a2.pk)]
    assert not JobDependency.objects.filter(job__in=[a2, b2]).exists()
    deliver_all(recording)
    assert (row(a2).status, row(b2).status) == ("completed", "completed")
    assert children(b2)[0].started_at >= children(a2)[0].completed_at


def test_retrying_a_sequential_array_keeps_its_chain(recording, mock_host, make_mock_host):
    flaky = make_mock_host(exit_code=2)
    parent = submit(mock_host, name="s", array_size=5, array_order="sequential")
    fail_child(parent, 2, flaky)
    deliver_all(recording)
    old = children(parent)
    again = retry_job(row(parent))
    kids = children(again)
    assert [k.array_index for k in kids] == [2, 3, 4]
    assert sorted(
        JobDependency.objects.filter(job__in=kids).values_list("job", "depends_on")
    ) == sorted([(kids[0].pk, old[1].pk), (kids[1].pk, kids[0].pk), (kids[2].pk, kids[1].pk)])
    ContainerJob.objects.filter(pk=kids[0].pk).update(docker_host=mock_host)
    deliver_all(recording)
    kids = children(again)
    assert [k.status for k in kids] == ["completed"] * 3
    assert sorted(kids, key=lambda k: k.started_at) == kids
    assert row(again).status == "completed"


def test_an_n_to_n_dependency_that_ended_before_the_submit(recording, mock_host, make_mock_host):
    """The doomed child is launched (and cancelled) by its parent's start, beyond the free slots."""
    a = submit(mock_host, name="a", array_size=4)
    fail_child(a, 2, make_mock_host(exit_code=1))
    deliver_all(recording)
    assert statuses(a) == ["completed", "completed", "failed", "completed"]
    b = submit(
        make_mock_host(max_concurrent_jobs=1), name="b", array_size=4, depends_on=[n_to_n(a)]
    )
    deliver_all(recording)
    assert statuses(b) == ["completed", "completed", "cancelled", "completed"]
    assert row(b).status == "cancelled"


def test_an_n_to_n_array_starts_no_child_whose_own_dependency_has_not_ended(recording, mock_host):
    a = submit(mock_host, name="a", array_size=4)
    b = submit(mock_host, name="b", array_size=4, depends_on=[n_to_n(a)])
    parents = [job for _, job, _ in recording.take()]
    assert sorted(parents) == sorted([str(a.pk), str(b.pk)])
    for job in parents:
        assert steps.run_step("launch", job) == "array-parent"
    sent = recording.take()
    # A's children are sent; B's wait for their A child's release, which sends each.
    assert {job for _, job, _ in sent} == {str(child.pk) for child in children(a)}
    for step, job, delay in sent:
        recording.send(step, job, delay)
    answers = deliver_all(recording)
    assert "waiting-for-dependencies" not in {answer for _, _, answer in answers}
    assert statuses(b) == ["completed"] * 4
