"""Dependencies and arrays on the mock executor, message by message.

The recording backend delivers nothing by itself: each test plays the transport, or loses it.
"""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from container_manager.engine import steps, transitions, workflows
from container_manager.executors.mock import MockExecutor
from container_manager.models import (
    ArrayCounts,
    ContainerExecution,
    ContainerJob,
    ExecutorHost,
    JobDependency,
)
from tests.support import SWEEP_STATEMENTS, row, submit, sweep_until_done

pytestmark = pytest.mark.django_db(transaction=True)


def deliver_all(backend, limit=500):
    """Deliver recorded messages (ignoring delays) until none are left; return what launch said."""
    answers = []
    for _ in range(limit):
        batch = backend.take()
        if not batch:
            return answers
        for step, job_id, _delay in batch:
            answers.append((step, job_id, steps.run_step(step, job_id)))
    pytest.fail("messages kept coming")


def launches(job):
    return MockExecutor.launch_count(job.pk)


# -- dependencies ------------------------------------------------------------


def test_chain_runs_in_order(recording, mock_host):
    a = submit(mock_host, name="a")
    b = submit(mock_host, name="b", depends_on=[a])
    c = submit(mock_host, name="c", depends_on=[b.pk])
    assert list(c.depends_on.all()) == [b]
    assert list(a.dependents.all()) == [b]
    answers = deliver_all(recording)
    assert ("launch", str(b.pk), "waiting-for-dependencies") in answers
    a, b, c = row(a), row(b), row(c)
    assert [j.status for j in (a, b, c)] == ["completed"] * 3
    assert a.completed_at <= b.started_at and b.completed_at <= c.started_at
    assert [launches(j) for j in (a, b, c)] == [1, 1, 1]


def test_diamond_launches_the_join_once_after_both(recording, mock_host):
    a = submit(mock_host)
    b = submit(mock_host, depends_on=[a])
    c = submit(mock_host, depends_on=[a])
    d = submit(mock_host, depends_on=[b, c])
    deliver_all(recording)
    a, b, c, d = (row(j) for j in (a, b, c, d))
    assert {j.status for j in (a, b, c, d)} == {"completed"}
    assert d.started_at >= max(b.completed_at, c.completed_at)
    assert launches(d) == 1 and MockExecutor.execution_count(d.pk) == 1


def test_a_failed_dependency_cancels_the_chain(recording, make_mock_host, mock_host):
    failing = make_mock_host(exit_code=2)
    a = submit(failing, name="extract")
    b = submit(mock_host, depends_on=[a])
    c = submit(mock_host, depends_on=[b])
    other = submit(mock_host)
    deliver_all(recording)
    a, b, c, other = (row(j) for j in (a, b, c, other))
    assert (a.status, b.status, c.status, other.status) == (
        "failed", "cancelled", "cancelled", "completed",
    )  # fmt: skip
    assert b.last_error == f"dependency {a.pk} (extract) ended failed"
    assert c.last_error == f"dependency {b.pk} ended cancelled"
    assert launches(b) == launches(c) == 0
    assert not ContainerExecution.objects.filter(job__in=[b, c]).exists()


def test_a_finished_dependency_is_settled_by_the_first_launch(recording, make_mock_host, mock_host):
    done = submit(mock_host)
    failed = submit(make_mock_host(exit_code=1))
    deliver_all(recording)
    doomed = submit(mock_host, depends_on=[done, failed])
    assert recording.take() == [("launch", str(doomed.pk), 0)]
    assert steps.launch(doomed.pk) == "cancelled"
    assert row(doomed).status == "cancelled"
    assert row(doomed).last_error == f"dependency {failed.pk} ended failed"
    assert steps.launch(doomed.pk) == "nothing-to-do"
    recording.take()
    ready = submit(mock_host, depends_on=[done])
    assert recording.take() == [("launch", str(ready.pk), 0.0)]
    assert steps.launch(ready.pk) == "launched"


@pytest.mark.parametrize(
    "depends_on, message",
    [
        (["00000000-0000-0000-0000-000000000001"], "no job 00000000-0000-0000-0000-000000000001"),
        (["nope"], "'nope' is not a job id"),
        ("a-string", "must be a list"),
        ([ContainerJob(docker_image="x")], "must be saved first"),
    ],
)
def test_bad_dependencies_are_refused_and_nothing_is_stored(
    recording, mock_host, depends_on, message
):
    before = ContainerJob.objects.count()
    with pytest.raises(ValidationError) as caught:
        submit(mock_host, depends_on=depends_on)
    assert message in caught.value.message_dict["depends_on"][0]
    assert ContainerJob.objects.count() == before
    assert not JobDependency.objects.exists()
    assert recording.take() == []


def test_a_cycle_is_refused_and_nothing_is_stored(recording, mock_host):
    a = submit(mock_host)
    b = submit(mock_host, depends_on=[a])
    c = submit(mock_host, depends_on=[b])
    for target in (c, a):
        with pytest.raises(ValidationError) as caught:
            workflows.add_dependencies(a, [target])
        assert "cycle" in caught.value.message_dict["depends_on"][0]
    assert JobDependency.objects.count() == 2
    parent = submit(mock_host, array_size=2)
    with pytest.raises(ValidationError, match="cycle"):
        workflows.add_dependencies(parent, [parent.array_children.first()])
    outside = submit(mock_host, depends_on=[parent.array_children.first()])
    with pytest.raises(ValidationError, match="cycle"):
        workflows.add_dependencies(parent, [outside])
    assert JobDependency.objects.count() == 3
    extra = submit(mock_host)
    workflows.add_dependencies(c, [extra])
    assert set(c.depends_on.all()) == {b, extra}


def test_duplicate_dependencies_count_once(recording, mock_host):
    a = submit(mock_host)
    b = submit(mock_host, depends_on=[a, a.pk, str(a.pk)])
    assert JobDependency.objects.filter(job=b).count() == 1


# -- arrays --------------------------------------------------------------------


def test_array_parent_runs_no_container_and_follows_its_children(recording, mock_host):
    parent = submit(mock_host, name="shard", array_size=4)
    children = list(parent.array_children.order_by("array_index"))
    assert [(c.array_index, c.array_size, c.name) for c in children] == [
        (i, 4, f"shard[{i}]") for i in range(4)
    ]
    env = steps.build_launch_request(children[3]).environment
    assert (env["CM_ARRAY_INDEX"], env["CM_ARRAY_SIZE"]) == ("3", "4")
    [(step, job_id, _)] = recording.take()
    assert (step, job_id) == ("launch", str(parent.pk))
    assert steps.launch(parent.pk) == "array-parent"
    first = recording.take()
    assert sorted(job_id for _, job_id, _ in first) == sorted(str(c.pk) for c in children)
    assert steps.launch(children[0].pk) == "launched"
    assert row(parent).status == "running"
    assert ExecutorHost.objects.get(pk=mock_host.pk).current_job_count == 1
    for step, job_id, _ in first[1:]:
        steps.run_step(step, job_id)
    deliver_all(recording)
    parent = row(parent)
    assert (parent.status, parent.last_error) == ("completed", "")
    assert launches(parent) == 0 and not parent.containerexecution_set.exists()
    assert workflows.status_counts(parent)["completed"] == 4
    assert ArrayCounts.objects.get(parent=parent).completed == 4
    assert ExecutorHost.objects.get(pk=mock_host.pk).current_job_count == 0


def test_array_of_failing_children_fails(recording, make_mock_host):
    parent = submit(make_mock_host(exit_code=1), array_size=3)
    deliver_all(recording)
    parent = row(parent)
    assert parent.status == "failed"
    assert parent.last_error == "array children: 0 completed, 3 failed, 0 timed out, 0 cancelled"


def test_cancelling_the_parent_cancels_the_children(recording, make_mock_host):
    host = make_mock_host(duration=3600, max_concurrent_jobs=2)
    parent = submit(host, array_size=5)
    recording.take()
    steps.launch(parent.pk)
    for _, job_id, _ in recording.take():
        steps.launch(job_id)
    assert workflows.status_counts(parent)["running"] == 2
    assert parent.cancel()
    deliver_all(recording)
    parent = row(parent)
    assert parent.status == "cancelled"
    assert set(parent.array_children.values_list("status", flat=True)) == {"cancelled"}
    assert ExecutorHost.objects.get(pk=host.pk).current_job_count == 0


def test_fan_in_waits_for_the_whole_array(recording, mock_host):
    parent = submit(mock_host, array_size=3)
    merge = submit(mock_host, depends_on=[parent])
    answers = deliver_all(recording)
    merge, parent = row(merge), row(parent)
    assert ("launch", str(merge.pk), "waiting-for-dependencies") in answers
    assert (parent.status, merge.status, launches(merge)) == ("completed", "completed", 1)
    assert merge.started_at >= max(parent.array_children.values_list("completed_at", flat=True))


def test_an_array_waits_for_its_dependency_and_is_cancelled_with_it(recording, make_mock_host):
    failed = submit(make_mock_host(exit_code=1))
    parent = submit(make_mock_host(), array_size=3, depends_on=[failed])
    answers = deliver_all(recording)
    assert ("launch", str(parent.pk), "waiting-for-dependencies") in answers
    parent = row(parent)
    assert parent.status == "cancelled"
    errors = set(parent.array_children.values_list("last_error", flat=True))
    assert errors == {f"dependency {failed.pk} ended failed"}


@pytest.mark.parametrize("size", [1, 10_001, "3", True, 2.0])
def test_bad_array_sizes_are_refused(recording, mock_host, size):
    with pytest.raises(ValidationError) as caught:
        submit(mock_host, array_size=size)
    assert "array_size" in caught.value.message_dict
    assert not ContainerJob.objects.exists()


def test_array_max_size_setting_caps_arrays(recording, mock_host, settings):
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "ARRAY_MAX_SIZE": 5}
    with pytest.raises(ValidationError, match="from 2 to 5"):
        submit(mock_host, array_size=6)
    assert submit(mock_host, array_size=5).array_children.count() == 5


def test_making_an_array_takes_a_constant_number_of_statements(recording, mock_host):
    def statements(size):
        with CaptureQueriesContext(connection) as captured:
            submit(mock_host, array_size=size)
        return len(captured)

    # Every child in one INSERT … SELECT on both databases (SQLite used to split by its
    # parameter limit: 1 statement more per 999 parameters).
    assert statements(3) == statements(300) == statements(2000)


def test_children_are_ordinary_jobs_copied_from_the_parent(recording, mock_host):
    run_after = timezone.now() + timedelta(hours=1)
    parent = ContainerJob.objects.create_job(
        image="etl:1", command="echo hi", docker_host=mock_host, memory_limit=128, priority=3,
        array_size=3, environment_vars={"A": "1"}, network_configuration=[{"network_name": "n"}],
        run_after=run_after, max_attempts=5,
    )  # fmt: skip
    children = list(ContainerJob.objects.filter(array_parent=parent).order_by("created_at"))
    assert [(c.array_index, c.name) for c in children] == [(i, f"etl:1[{i}]") for i in range(3)]
    assert len({c.pk for c in children} | {parent.pk}) == 4
    assert all(c.id.version == 4 for c in children)
    assert children[0].created_at >= parent.created_at
    for child in children:
        assert (child.status, child.attempt_count, child.has_dependents) == ("pending", 0, False)
        assert (child.command, child.memory_limit, child.priority) == ("echo hi", 128, 3)
        assert (child.array_size, child.max_attempts, child.run_after) == (3, 5, run_after)
        assert child.override_environment == "A=1"
        assert child.network_configuration == [{"network_name": "n"}]
        assert (child.executor_metadata, child.stdout_log, child.exit_code) == ({}, "", None)
        assert child.docker_host_id == mock_host.pk
    ids = [str(c.pk) for c in children]
    assert [str(pk) for pk in ContainerJob.objects.launchable(run_after).filter(
        array_parent=parent).values_list("pk", flat=True)] == ids  # fmt: skip
    assert recording.take() == [("launch", str(parent.pk), 0)]


@pytest.mark.postgres
def test_an_array_of_10000_is_submitted_in_a_few_statements(postgres_only, recording, mock_host):
    with CaptureQueriesContext(connection) as small:
        submit(mock_host, array_size=3)
    with CaptureQueriesContext(connection) as captured:
        parent = submit(mock_host, array_size=10_000)
    assert len(captured) == len(small)
    assert parent.array_children.count() == 10_000
    assert parent.array_children.filter(status="pending", array_index=9_999).exists()


def test_a_child_costs_what_a_job_costs_plus_its_count(recording, make_mock_host):
    """A child's start reads no parent once its parent runs; its end counts in one statement."""
    host = make_mock_host(max_concurrent_jobs=10)
    parent = submit(host, array_size=3)
    steps.launch(parent.pk)
    first, second, _ = parent.array_children.order_by("array_index")
    steps.launch(first.pk)  # moves the parent to running
    single = submit(host)
    recording.take()

    def statements(step, job):
        with CaptureQueriesContext(connection) as captured:
            steps.run_step(step, job.pk)
        return len(captured)

    assert statements("launch", second) == statements("launch", single)
    # PostgreSQL: the count is a CTE of the final move's one statement, with no transaction
    # (the counts row is locked only while it runs); SQLite: one UPDATE more in the move's.
    added = 0 if connection.vendor == "postgresql" else 1
    assert statements("check", second) == statements("check", single) + added
    counts = ArrayCounts.objects.get(parent=parent)
    assert (counts.completed, counts.finished) == (1, 1)
    assert row(parent).status == "running"


def test_an_array_whose_last_childs_end_was_lost_is_ended_by_the_sweep(
    recording, make_mock_host, monkeypatch
):
    """The last child's count commits, its step dies before it ends the parent: the sweep's
    check of the parent ends it from the counts row, once."""
    parent = submit(make_mock_host(max_concurrent_jobs=10), array_size=2)
    steps.launch(parent.pk)
    first, last = parent.array_children.order_by("array_index")
    for child in (first, last):
        steps.launch(child.pk)
    assert steps.check(first.pk) == "completed"
    monkeypatch.setattr(transitions, "_end_array", lambda *args: False)  # the step dies here
    assert steps.check(last.pk) == "completed"
    monkeypatch.undo()
    assert row(parent).status == "running"
    assert ArrayCounts.objects.get(parent=parent).finished == 2
    recording.take()
    steps.sweep(now=timezone.now() + timedelta(minutes=5))
    assert ("check", str(parent.pk)) in [(step, job_id) for step, job_id, _ in recording.take()]
    assert steps.check(parent.pk) == "array-ended"
    parent = row(parent)
    assert (parent.status, parent.last_error) == ("completed", "")
    assert steps.check(parent.pk) == "nothing-to-do"  # a duplicate changes nothing
    steps.sweep(now=timezone.now() + timedelta(minutes=10))
    assert ("check", str(parent.pk)) not in [(s, j) for s, j, _ in recording.take()]


def test_the_sweep_leaves_a_live_array_with_children_left_alone(recording, make_mock_host):
    parent = submit(make_mock_host(max_concurrent_jobs=10), array_size=2)
    steps.launch(parent.pk)
    first = parent.array_children.get(array_index=0)
    steps.launch(first.pk)
    steps.check(first.pk)
    recording.take()
    steps.sweep(now=timezone.now() + timedelta(minutes=5))
    assert str(parent.pk) not in [job_id for _, job_id, _ in recording.take()]
    assert steps.check(parent.pk) == "array-live"
    assert row(parent).status == "running"


# -- the sweep -----------------------------------------------------------------


def test_sweep_launches_only_unblocked_jobs_within_free_slots(recording, make_mock_host):
    host = make_mock_host(max_concurrent_jobs=3)
    parent = submit(host, array_size=10)
    blocker = submit(make_mock_host(duration=3600))
    waiting = submit(host, depends_on=[blocker])
    recording.take()
    sent = steps.sweep(now=timezone.now() + timedelta(seconds=5))
    assert sent["launch"] == 3 + 1  # three children in the host's slots, and the blocker
    launched = {job_id for step, job_id, _ in recording.take() if step == "launch"}
    assert str(parent.pk) not in launched and str(waiting.pk) not in launched
    assert str(blocker.pk) in launched


def test_lost_messages_are_recovered_by_the_sweep(recording, make_mock_host, mock_host):
    failing = make_mock_host(exit_code=1)
    a = submit(mock_host)
    b = submit(mock_host, depends_on=[a])
    parent = submit(mock_host, array_size=3, depends_on=[b])
    merge = submit(mock_host, depends_on=[parent])
    bad = submit(failing)
    doomed = submit(mock_host, depends_on=[bad])
    after_doomed = submit(mock_host, depends_on=[doomed])
    jobs = [a, b, parent, merge, bad, doomed, after_doomed]
    sweep_until_done(recording)
    statuses = [row(j).status for j in jobs]
    assert statuses == ["completed"] * 4 + ["failed", "cancelled", "cancelled"]
    assert all(launches(j) <= 1 for j in ContainerJob.objects.all())
    assert row(after_doomed).last_error == f"dependency {doomed.pk} ended cancelled"


def test_fargate_children_also_get_the_aws_batch_index(db):
    host = ExecutorHost.objects.create(
        name="fargate", executor_type="fargate", connection_string="ecs://cluster"
    )
    parent = ContainerJob(docker_host=host, array_size=5)
    child = ContainerJob(docker_host=host, array_parent=parent, array_index=2, array_size=5)
    assert workflows.array_environment(child) == {
        "CM_ARRAY_INDEX": "2", "CM_ARRAY_SIZE": "5", "AWS_BATCH_JOB_ARRAY_INDEX": "2",
    }  # fmt: skip
    assert workflows.array_environment(parent) == {}


def test_sweep_query_count_does_not_grow_with_workflows(
    recording, make_mock_host, django_assert_num_queries
):
    host, failing = make_mock_host(), make_mock_host(exit_code=1)
    later = timezone.now() + timedelta(seconds=5)
    bad = submit(failing)
    submit(host, depends_on=[bad])
    with django_assert_num_queries(SWEEP_STATEMENTS):
        steps.sweep(now=later)
    for _ in range(10):
        parent = submit(host, array_size=5)
        submit(host, depends_on=[parent, bad])
    steps.launch(bad.pk)
    steps.check(bad.pk)
    recording.take()  # the releases are lost
    with django_assert_num_queries(SWEEP_STATEMENTS):
        sent = steps.sweep(now=later + timedelta(seconds=5))
    assert (sent["settle"], sent["launch"]) == (11, 10)  # ten children fill the host's slots
